//! The stable diagnostic codes. A code is never reused or renumbered; each is
//! documented under its own heading in `docs/diagnostics.md` (a test checks it).

use serde::{Serialize, Serializer};

use super::Severity;

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $title:literal;)*) => {
        /// A stable diagnostic code (`GGnnn`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }
            /// A short title, used in GitHub annotations and docs.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }
            pub fn default_severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }
        }
    };
}

codes! {
    // Loading and parsing (any YAML file).
    YamlSyntax = "GG001", Error, "invalid YAML";
    UnknownField = "GG002", Error, "unknown field";
    DuplicateKey = "GG003", Error, "duplicate key";
    InvalidValue = "GG004", Error, "wrong type or missing field";
    FileTooLarge = "GG005", Error, "file too large";
    YamlBudget = "GG006", Error, "YAML expansion limit exceeded";
    InvalidUtf8 = "GG007", Error, "file is not UTF-8";
    NotAMapping = "GG008", Error, "document is not a mapping";
    MultipleDocuments = "GG009", Error, "more than one YAML document";
    Symlink = "GG010", Error, "symbolic link refused";
    InvalidRequestId = "GG011", Error, "invalid request id";
    DuplicateRequestId = "GG012", Error, "duplicate request id";
    UnexpectedFile = "GG013", Warning, "file ignored";
    RequestNotYaml = "GG014", Error, "request saved as .yml";
    // Policy files.
    DuplicateName = "GG101", Error, "name defined twice";
    UnknownGroup = "GG102", Error, "unknown group";
    InvalidGrant = "GG103", Error, "invalid role grant";
    InvalidTemplate = "GG104", Error, "template missing or invalid";
    InvalidTiers = "GG105", Error, "invalid risk tiers";
    InvalidDuration = "GG106", Error, "invalid duration";
    InvalidPattern = "GG107", Error, "invalid ticket pattern";
    InvalidBusinessHours = "GG108", Error, "invalid business hours";
    InvalidResourceConfig = "GG109", Error, "invalid resource config";
    InlineSecret = "GG110", Error, "secret written inline";
    MissingPolicy = "GG111", Error, "policy section missing";
    UnsatisfiableApproval = "GG112", Warning, "approval cannot be satisfied";
    UnknownIdentity = "GG113", Error, "unknown identity";
    PolicyTooLarge = "GG114", Error, "grant too large for the provider";
    InvalidSink = "GG115", Error, "invalid notification sink";
    InlineWebhookUrl = "GG116", Error, "webhook URL written inline";
    InvalidUrlEnv = "GG117", Error, "invalid or missing url_env";
    UnknownEventKind = "GG118", Error, "unknown notification event";
    TeamUnresolved = "GG190", Warning, "GitHub team not resolved";
    // Policy files: the `monitor` section.
    InvalidMonitorRule = "GG120", Error, "invalid monitor rule";
    MonitorUnknownRole = "GG121", Error, "monitor rule names an unknown role";
    // Request files.
    UnknownRole = "GG201", Error, "unknown role";
    UnknownResource = "GG202", Error, "unknown resource";
    NoGrantForProvider = "GG203", Error, "role has no grant for this provider";
    UnknownRequester = "GG204", Error, "requester has no identity";
    NoPrincipal = "GG205", Error, "requester has no principal for provider";
    NotEligible = "GG206", Error, "requester not eligible for role";
    BadDuration = "GG207", Error, "invalid request duration";
    DurationTooLong = "GG208", Error, "duration exceeds maximum";
    WindowConflict = "GG209", Error, "give either duration or until";
    BadTimestamp = "GG210", Error, "invalid time window";
    EndsInPast = "GG211", Error, "request ends in the past";
    ReasonTooShort = "GG212", Error, "reason too short";
    TicketMissing = "GG213", Error, "ticket required";
    TicketPattern = "GG214", Error, "ticket does not match pattern";
    BreakGlassNotAllowed = "GG215", Error, "break-glass not allowed";
    TierDurationCap = "GG216", Error, "duration above the tier's cap";
    UnknownExtends = "GG217", Error, "extends an unknown request";
    DuplicateResource = "GG218", Warning, "resource listed twice";
    ExtendsMismatch = "GG219", Error, "extension does not continue the request";
    // Pull-request level.
    MixedChange = "GG301", Error, "policy and request changes mixed";
    ModifiedRequest = "GG302", Note, "merged request modified";
    PolicyChange = "GG303", Note, "policy change";
    NoPolicies = "GG304", Error, "no policies to judge by";
    ContentUnchanged = "GG305", Note, "request text edited, content unchanged";
    // The chain of trust for rule files.
    RuleChangeInForce = "GG310", Error, "unapproved rule change in force";
}

/// The `audit verify` finding codes of the chain of trust: (code, name, title).
/// AV001-AV006 live in `audit::verify`; these are documented in
/// `docs/diagnostics.md` under "Audit findings" (a test checks it).
pub const AUDIT_TRUST: &[(&str, &str, &str)] =
    &[("AV010", "rule-change-unapproved", "unapproved rule change in force"), ("AV011", "grant-untrusted-rules", "grant judged by untrusted rules")];

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn codes_are_unique_and_documented() {
        let docs = include_str!("../../docs/diagnostics.md");
        let mut seen = std::collections::BTreeSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{} is used twice", c.as_str());
            let heading = format!("## {}: {}", c.as_str(), c.title());
            assert!(docs.contains(&heading), "docs/diagnostics.md lacks `{heading}`");
        }
        for (code, _, title) in super::AUDIT_TRUST {
            let heading = format!("## {code}: {title}");
            assert!(docs.contains(&heading), "docs/diagnostics.md lacks `{heading}`");
        }
        let documented = docs.lines().filter(|l| l.starts_with("## GG")).count();
        assert_eq!(documented, Code::ALL.len(), "docs/diagnostics.md documents codes that do not exist");
    }
}
