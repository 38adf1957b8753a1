//! One request's verdict: how a change classifies it ([`Change`]), its
//! risk, tier and required approvals ([`evaluate`]), in the shape
//! `check --format json` documents ([`RequestOutcome`]). Pure over its inputs.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::history::History;
use crate::model::policy::{ApprovalRule, Policy};
use crate::model::request::Request;
use crate::risk::{self, RequesterFacts, Risk};

/// How a PR changes a request file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    New,
    Modified,
    Shrink,
    Removed,
    /// Not changed (with `--all`), or a changed text whose parsed content
    /// is identical to the version before (a comment): needs no approval,
    /// keeps the approval of the landing that approved that content.
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Modified => "modified",
            Change::Shrink => "shrink",
            Change::Removed => "removed",
            Change::Unchanged => "unchanged",
        }
    }
    /// Does this change grant anything new (and so need approval)?
    pub fn needs_approval(self) -> bool {
        matches!(self, Change::New | Change::Modified)
    }
    /// Is the request (after this change) one that asks for access at all?
    pub fn asks_for_access(self) -> bool {
        matches!(self, Change::New | Change::Modified | Change::Unchanged)
    }
    /// Is the request validated against the policies? (A shrink only takes
    /// access away; a removal leaves nothing to validate.)
    pub fn needs_validation(self) -> bool {
        !matches!(self, Change::Shrink | Change::Removed)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Approvals {
    pub required: Vec<ApprovalRule>,
    /// `null` from `check` (reviews are judged by `gate`/`approvals`).
    pub satisfied: Option<bool>,
}

/// One request's verdict, in the shape `check --format json` documents.
#[derive(Debug, Clone, Serialize)]
pub struct RequestOutcome {
    pub id: String,
    pub file: String,
    pub change: Change,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub break_glass: bool,
    pub valid: bool,
    pub risk: Option<Risk>,
    pub approvals: Approvals,
    #[serde(skip)]
    pub facts: RequesterFacts,
    #[serde(skip)]
    pub request: Option<Request>,
}

/// Scores one request and finds its approvals; pure over its inputs.
pub fn evaluate(
    req: Request,
    change: Change,
    valid: bool,
    policy: &Policy,
    history: &History,
    default_start: DateTime<Utc>,
    d: &mut Diagnostics,
) -> RequestOutcome {
    let window = req.window(default_start);
    let facts = window.map(|w| super::facts::requester_facts(history, &req, w.start)).unwrap_or_default();
    let role_known = policy.roles.contains_key(&req.role);
    let risk = match window {
        Some(w) if role_known && change != Change::Removed => Some(risk::score(&req, w, policy, &facts)),
        _ => None,
    };
    // Unchanged requests show what they needed (for `explain`, `--all`).
    let required = match (&risk, change) {
        (Some(r), Change::New | Change::Modified | Change::Unchanged) => risk::required_approvals(&req, r, policy).to_vec(),
        _ => Vec::new(),
    };
    // The tier cap holds for every request that asks for access: in a PR,
    // at a landing, and in `check --all` (plan, reconcile and audit verify
    // judge through the landing, which runs this).
    if let (Some(r), Some(w), true) = (&risk, window, change.asks_for_access() && !req.break_glass)
        && let Some(cap) = risk::tier(r, policy).and_then(|t| t.max_duration)
        && w.length() > cap
    {
        let pos = req.raw.duration.as_ref().or(req.raw.until.as_ref()).map_or(req.raw.role.pos, |s| s.pos);
        d.push(
            Diagnostic::new(Code::TierDurationCap, &req.file, pos, format!("tier `{}` allows at most {cap}; this window is {}", r.tier, w.length()))
                .help(format!("shorten the window to {cap} or less, or ask for it in steps with `gitgrant extend`")),
        );
    }
    RequestOutcome {
        id: req.id.clone(),
        file: req.file.clone(),
        change,
        requester: req.requester.clone(),
        role: req.role.clone(),
        resources: req.resources.clone(),
        start: window.map(|w| w.start),
        end: window.map(|w| w.end),
        break_glass: req.break_glass,
        valid,
        risk,
        approvals: Approvals { required, satisfied: None },
        facts,
        request: Some(req),
    }
}

/// `1 from security; 1 from managers` — for messages.
pub fn describe_rules(rules: &[ApprovalRule]) -> String {
    if rules.is_empty() {
        return "no approvals".to_string();
    }
    rules.iter().map(|r| format!("{} from {}", r.count, r.from.join(" or "))).collect::<Vec<_>>().join(" and ")
}
