//! Loading `policies/*.yaml` and `templates/**` from a tree into a checked
//! [`Policy`]. Files are merged; a name defined twice is an error.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Weekday;

use crate::diag::{Code, Diagnostic, Diagnostics, Pos};
use crate::model::policy::*;
use crate::model::{Duration, Sp};
use crate::source::{EntryKind, Tree, parse_yaml};

pub const POLICY_DIR: &str = "policies";
pub const TEMPLATE_DIR: &str = "templates";

/// The result of loading policies: the policy (best effort, even with errors,
/// so later checks can still run) and every diagnostic.
pub struct PolicyLoad {
    pub policy: Policy,
    pub diagnostics: Diagnostics,
    /// True when `policies/` has no YAML file at all.
    pub empty: bool,
    /// The text of every file read, by path: diagnostics show their source
    /// line from the tree they were found in, not from the working tree.
    pub sources: BTreeMap<String, String>,
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// Keys whose values would be secrets; config holds env var *names* only.
const SECRET_KEYS: &[&str] =
    &["password", "secret", "token", "dsn", "private_key", "access_key", "secret_access_key", "client_secret", "connection_string", "kubeconfig_data"];

/// Known config keys per provider (`required`, `optional`).
fn config_keys(p: ProviderKind) -> (&'static [&'static str], &'static [&'static str]) {
    match p {
        ProviderKind::Local => (&[], &["state", "activity"]),
        ProviderKind::AwsIam => (&[], &["account_id", "region", "path"]),
        ProviderKind::AwsSso => (&["instance_arn", "identity_store_id", "account_id"], &["region", "status_timeout"]),
        ProviderKind::GcpIam => (&[], &["project", "folder", "organization", "endpoint"]),
        ProviderKind::AzureRbac => (&["scope"], &["endpoint"]),
        ProviderKind::Kubernetes => (&[], &["context", "kubeconfig", "kubeconfig_env", "namespace", "namespaces"]),
        ProviderKind::Postgres => (&["dsn_env"], &["admin_role", "login_roles"]),
    }
}

struct Ctx<'a> {
    d: &'a mut Diagnostics,
}

impl Ctx<'_> {
    fn err(&mut self, code: Code, file: &str, pos: Pos, msg: impl Into<String>, help: impl Into<String>) {
        self.d.push(Diagnostic::new(code, file, pos, msg).help(help));
    }
}

/// Loads and checks every policy file and template in `tree`.
pub fn load_policy(tree: &dyn Tree) -> PolicyLoad {
    let mut diagnostics = Diagnostics::default();
    let mut files: Vec<(String, RawPolicyFile)> = Vec::new();
    let mut sources = BTreeMap::new();
    let mut unread = false;
    let entries = match tree.list(POLICY_DIR) {
        Ok(e) => e,
        Err(e) => {
            diagnostics.push(Diagnostic::new(Code::MissingPolicy, POLICY_DIR, Pos::FILE, format!("cannot list policies in {}: {e}", tree.label())));
            Vec::new()
        }
    };
    for entry in &entries {
        if entry.kind == EntryKind::File && !is_yaml(&entry.path) {
            if !entry.path.rsplit('/').next().is_some_and(|n| n.starts_with('.') || n.ends_with(".md")) {
                diagnostics.push(
                    Diagnostic::new(Code::UnexpectedFile, &entry.path, Pos::FILE, format!("`{}` is not a .yaml file and is ignored", entry.path))
                        .help("policy files end in .yaml"),
                );
            }
            continue;
        }
        let parsed = tree.read_source(entry).and_then(|f| {
            let raw = parse_yaml::<RawPolicyFile>(&f, "policy file");
            sources.insert(f.path, f.text);
            raw
        });
        match parsed {
            Ok(raw) => files.push((entry.path.clone(), raw)),
            Err(d) => {
                unread |= d.is_error();
                diagnostics.push(d);
            }
        }
    }
    let empty = files.is_empty() && !diagnostics.has_errors();
    let templates = load_templates(tree, &mut diagnostics);
    sources.extend(templates.iter().map(|(name, text)| (format!("{TEMPLATE_DIR}/{name}"), text.clone())));
    let mut merged = Diagnostics::default();
    let mut policy = merge_and_check(&files, &mut merged);
    if unread {
        // A file that could not be read defines nothing: a reference to a group
        // or a section it holds is not a defect of its own. One typo in
        // groups.yaml must not bury its diagnostic under one error per use.
        diagnostics.extend(merged.into_iter().filter(|d| !matches!(d.code, Code::UnknownGroup | Code::MissingPolicy | Code::UnsatisfiableApproval)));
    } else {
        diagnostics.extend(merged);
    }
    policy.templates = templates;
    check_templates(&policy, &files, &mut diagnostics);
    PolicyLoad { policy, diagnostics, empty, sources }
}

fn load_templates(tree: &dyn Tree, d: &mut Diagnostics) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = tree.list(TEMPLATE_DIR) else {
        return out;
    };
    for entry in entries {
        if entry.path.rsplit('/').next().is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        match tree.read_source(&entry) {
            Ok(f) => {
                let name = f.path.strip_prefix("templates/").unwrap_or(&f.path).to_string();
                if name.ends_with(".j2") {
                    let env = crate::render::environment();
                    if let Err(e) = env.template_from_str(&f.text) {
                        let line = e.line().unwrap_or(1) as u32;
                        d.push(
                            Diagnostic::new(
                                Code::InvalidTemplate,
                                &f.path,
                                Pos::new(line, 1),
                                format!("template does not compile: {}", e.detail().unwrap_or("syntax error")),
                            )
                            .help("fix the minijinja syntax"),
                        );
                    }
                }
                out.insert(name, f.text);
            }
            Err(diag) => d.push(diag),
        }
    }
    out
}

/// A template whose text alone renders above IAM's managed-policy size
/// limit: every grant of the role would fail at the provider. Rendered with
/// no values (a lower bound of every real rendering), so it is only reported
/// when it cannot fit whatever the request.
fn template_too_large(source: &str) -> Option<usize> {
    let mut env = crate::render::environment();
    env.add_template("t.json.j2", source).ok()?;
    let text = env.get_template("t.json.j2").ok()?.render(minijinja::context! {}).ok()?;
    crate::provider::aws_limits::policy_size_over_limit(&text)
}

/// Role grants that name a template must name one that exists.
fn check_templates(policy: &Policy, files: &[(String, RawPolicyFile)], d: &mut Diagnostics) {
    for (file, raw) in files {
        for (name, role) in &raw.roles {
            if let Some(g) = &role.grants.aws_iam
                && let Some(t) = &g.policy_template
                && let Some(size) = policy.templates.get(t).and_then(|src| template_too_large(src))
            {
                d.push(
                    Diagnostic::new(
                        Code::PolicyTooLarge,
                        file,
                        g.pos,
                        format!(
                            "role `{}`: `templates/{t}` renders to {size} characters, above IAM's limit of {} for a customer-managed policy; every grant would fail",
                            name.value,
                            crate::provider::aws_limits::MANAGED_POLICY_MAX_CHARS
                        ),
                    )
                    .help("narrow the template to the actions and resources the role needs; for a large AWS managed policy use an `aws-sso` permission set (aws-iam copies `managed_policy_arn` into a policy of the same limit)"),
                );
            }
            if let Some(g) = &role.grants.aws_iam
                && let Some(t) = &g.policy_template
                && !policy.templates.contains_key(t)
            {
                d.push(
                    Diagnostic::new(Code::InvalidTemplate, file, g.pos, format!("role `{}`: template `templates/{t}` does not exist", name.value))
                        .help("add the template under templates/ or fix the path (relative to templates/)"),
                );
            }
        }
    }
}

fn merge_and_check(files: &[(String, RawPolicyFile)], d: &mut Diagnostics) -> Policy {
    let mut ctx = Ctx { d };
    let mut p = Policy::default();
    let mut seen: BTreeMap<(&str, String), Origin> = BTreeMap::new();
    let mut first_def = |ctx: &mut Ctx, kind: &'static str, name: &Sp<String>, file: &str| -> bool {
        let key = (kind, name.value.to_ascii_lowercase());
        if let Some(prev) = seen.get(&key) {
            // Reported at both definitions: which one is "first" is only file
            // order, and the one a PR adds must carry the annotation.
            ctx.err(
                Code::DuplicateName,
                file,
                name.pos,
                format!("{kind} `{}` is defined twice", name.value),
                format!("it is also defined at {}:{}:{}; remove or rename one", prev.file, prev.pos.line, prev.pos.column),
            );
            if prev.file != file {
                ctx.err(
                    Code::DuplicateName,
                    &prev.file,
                    prev.pos,
                    format!("{kind} `{}` is defined twice", name.value),
                    format!("it is also defined at {file}:{}:{}; remove or rename one", name.pos.line, name.pos.column),
                );
            }
            false
        } else {
            seen.insert(key, Origin { file: file.to_string(), pos: name.pos });
            true
        }
    };

    // Pass 1: definitions.
    for (file, raw) in files {
        for (name, g) in &raw.groups {
            if first_def(&mut ctx, "group", name, file) {
                let members = g.members.iter().map(|m| m.value.to_ascii_lowercase()).collect();
                p.groups.insert(
                    name.value.clone(),
                    Group { members, github_team: g.github_team.as_ref().map(|t| t.value.clone()), origin: Origin { file: file.clone(), pos: name.pos } },
                );
            }
        }
        for (name, id) in &raw.identities {
            if first_def(&mut ctx, "identity", name, file) {
                let mut principals = BTreeMap::new();
                for (kind, v) in [
                    (ProviderKind::AwsIam, &id.aws),
                    (ProviderKind::AwsSso, &id.aws_sso),
                    (ProviderKind::GcpIam, &id.gcp),
                    (ProviderKind::AzureRbac, &id.azure),
                    (ProviderKind::Kubernetes, &id.kubernetes),
                    (ProviderKind::Postgres, &id.postgres),
                ] {
                    if let Some(v) = v {
                        check_principal(&mut ctx, file, kind, v);
                        principals.insert(kind, v.value.clone());
                    }
                }
                p.identities.insert(name.value.to_ascii_lowercase(), Identity { principals });
            }
        }
        for (name, r) in &raw.resources {
            if first_def(&mut ctx, "resource", name, file) {
                let config = r.config.as_ref().map(|c| c.value.clone()).unwrap_or_default();
                check_config(&mut ctx, file, &name.value, r);
                p.resources.insert(
                    name.value.clone(),
                    Resource {
                        provider: r.provider.value,
                        environment: r.environment.value.clone(),
                        sensitivity: r.sensitivity.value,
                        description: r.description.clone(),
                        config,
                        origin: Origin { file: file.clone(), pos: name.pos },
                    },
                );
            }
        }
    }
    let mut risk: Option<(&str, &Sp<RawRisk>)> = None;
    let mut changes: Option<(&str, &Sp<RawApprovalRule>)> = None;
    let mut bg: Option<(&str, &Sp<RawBreakGlass>)> = None;
    let mut mon: Option<(&str, &Sp<RawMonitor>)> = None;
    let mut notif: Option<(&str, &Sp<crate::model::policy::RawNotifications>)> = None;
    for (file, raw) in files {
        single_section(&mut ctx, "notifications", file, raw.notifications.as_ref(), &mut notif);
        single_section(&mut ctx, "monitor", file, raw.monitor.as_ref(), &mut mon);
        single_section(&mut ctx, "risk", file, raw.risk.as_ref(), &mut risk);
        single_section(&mut ctx, "policy_changes", file, raw.policy_changes.as_ref(), &mut changes);
        single_section(&mut ctx, "break_glass", file, raw.break_glass.as_ref(), &mut bg);
    }
    let group_names: BTreeSet<String> = p.groups.keys().cloned().collect();

    // Pass 2: sections that refer to definitions.
    let mut patterns: HashMap<String, Result<regex::Regex, regex::Error>> = HashMap::new();
    for (file, raw) in files {
        for (name, g) in &raw.groups {
            if let Some(t) = &g.github_team {
                let ok = t.value.split_once('/').is_some_and(|(o, s)| !o.is_empty() && !s.is_empty() && !s.contains('/'));
                if !ok {
                    ctx.err(
                        Code::UnknownGroup,
                        file,
                        t.pos,
                        format!("group `{}`: `{}` is not a GitHub team", name.value, t.value),
                        "write the team as `org/team-slug`",
                    );
                }
            }
        }
        for (name, r) in &raw.roles {
            if !first_def(&mut ctx, "role", name, file) {
                continue;
            }
            let max_duration = duration(&mut ctx, file, &r.max_duration, "max_duration");
            for g in &r.eligible {
                group_ref(&mut ctx, file, g, &group_names, &format!("role `{}`", name.value));
            }
            if r.eligible.is_empty() {
                ctx.err(
                    Code::UnknownGroup,
                    file,
                    name.pos,
                    format!("role `{}` has no eligible groups", name.value),
                    "list the groups whose members may request it under `eligible`",
                );
            }
            // Roles mostly share a few patterns: compile each once (compiling
            // 1,000 took a third of a PR check on a 1,000-role policy).
            let compiled = r.ticket_pattern.as_ref().map(|t| patterns.entry(t.value.clone()).or_insert_with(|| regex::Regex::new(&t.value)).clone());
            let ticket_pattern = r.ticket_pattern.as_ref().zip(compiled).and_then(|(t, re)| match re {
                Ok(re) => Some(re),
                Err(e) => {
                    ctx.err(
                        Code::InvalidPattern,
                        file,
                        t.pos,
                        format!("`{}` is not a valid regular expression: {}", t.value, first_line(&e.to_string())),
                        "use Rust regex syntax, e.g. `^INC-[0-9]+$`",
                    );
                    None
                }
            });
            let grants = check_grants(&mut ctx, file, &name.value, &r.grants);
            p.roles.insert(
                name.value.clone(),
                Role {
                    description: r.description.clone(),
                    privilege: r.privilege.value,
                    max_duration: max_duration.unwrap_or(Duration::from_secs(0)),
                    eligible: r.eligible.iter().map(|g| g.value.clone()).collect(),
                    require_ticket: r.require_ticket.as_ref().is_some_and(|b| b.value),
                    ticket_pattern,
                    break_glass: r.break_glass.as_ref().map_or(bg.is_some(), |b| b.value),
                    grants,
                    origin: Origin { file: file.clone(), pos: name.pos },
                },
            );
            if r.break_glass.as_ref().is_some_and(|b| b.value)
                && bg.is_none()
                && let Some(b) = &r.break_glass
            {
                ctx.err(
                    Code::MissingPolicy,
                    file,
                    b.pos,
                    format!("role `{}` allows break-glass but no `break_glass` section exists", name.value),
                    "add a `break_glass:` section with approvals, max_duration, review_within and reviewers",
                );
            }
        }
    }

    match risk {
        Some((file, r)) => {
            p.factors = check_factors(&mut ctx, file, &r.factors);
            p.tiers = check_tiers(&mut ctx, file, &r.tiers, &group_names, &p.groups);
        }
        None => {
            let file = files.first().map_or(POLICY_DIR, |(f, _)| f.as_str());
            if !files.is_empty() {
                ctx.err(
                    Code::MissingPolicy,
                    file,
                    Pos::FILE,
                    "no `risk` section in policies/",
                    "add `risk:` with `factors` and `tiers` (see SPEC or `gitgrant init`)",
                );
            }
        }
    }
    if let Some((file, c)) = changes {
        p.policy_changes = approvals(&mut ctx, file, &c.approvals, &group_names, &p.groups, "policy_changes");
    } else if !files.is_empty() {
        let file = files.first().map_or(POLICY_DIR, |(f, _)| f.as_str());
        ctx.err(
            Code::MissingPolicy,
            file,
            Pos::FILE,
            "no `policy_changes` section in policies/",
            "add `policy_changes: { approvals: [ { from: [security], count: 2 } ] }` so policy PRs need review",
        );
    }
    if let Some((file, b)) = bg {
        let max_duration = duration(&mut ctx, file, &b.max_duration, "break_glass.max_duration");
        let review_within = duration(&mut ctx, file, &b.review_within, "break_glass.review_within");
        for g in &b.reviewers {
            group_ref(&mut ctx, file, g, &group_names, "break_glass.reviewers");
        }
        p.break_glass = Some(BreakGlass {
            approvals: approvals(&mut ctx, file, &b.approvals, &group_names, &p.groups, "break_glass"),
            max_duration: max_duration.unwrap_or(Duration::from_secs(0)),
            review_within: review_within.unwrap_or(Duration::from_secs(0)),
            reviewers: b.reviewers.iter().map(|g| g.value.clone()).collect(),
        });
    }
    if let Some((file, m)) = mon {
        p.monitor = check_monitor(&mut ctx, file, m, &p.roles);
    }
    if let Some((file, n)) = notif {
        p.notifications = check_notifications(&mut ctx, file, n);
    }
    p
}

/// The `notifications` section: lead times, and sinks whose URLs come from
/// environment variables (never inline), with known event kinds.
fn check_notifications(ctx: &mut Ctx, file: &str, n: &Sp<RawNotifications>) -> Notifications {
    let mut out = Notifications::default();
    out.request_reviews = n.request_reviews.as_ref().map_or(out.request_reviews, |b| b.value);
    out.mention = n.mention.as_ref().map_or(out.mention, |b| b.value);
    if let Some(d) = &n.expiring_soon {
        out.expiring_soon = duration(ctx, file, d, "notifications.expiring_soon").unwrap_or(out.expiring_soon);
    }
    if let Some(d) = &n.extend_by {
        out.extend_by = duration(ctx, file, d, "notifications.extend_by").unwrap_or(out.extend_by);
    }
    for (name, s) in &n.sinks {
        let kind = match s.kind.value.as_str() {
            "slack" => Some(SinkKind::Slack),
            "json" => Some(SinkKind::Json),
            "github" => Some(SinkKind::Github),
            other => {
                ctx.err(
                    Code::InvalidSink,
                    file,
                    s.kind.pos,
                    format!("sink `{}`: unknown kind `{other}`", name.value),
                    "write `kind: slack` (Slack-compatible webhook), `kind: json` (generic JSON webhook) or `kind: github` (a comment on the request's PR)",
                );
                None
            }
        };
        if let Some(u) = &s.url {
            ctx.err(
                Code::InlineWebhookUrl,
                file,
                u.pos,
                format!("sink `{}`: a webhook URL is a secret and must not be written in the repository", name.value),
                "put the URL in a CI secret and name its environment variable instead, e.g. `url_env: SLACK_WEBHOOK_URL`",
            );
        }
        let webhook = matches!(kind, Some(SinkKind::Slack | SinkKind::Json));
        match &s.url_env {
            Some(v) if !webhook && kind.is_some() => {
                ctx.err(
                    Code::InvalidSink,
                    file,
                    v.pos,
                    format!("sink `{}`: `url_env` is for webhook sinks only", name.value),
                    "remove `url_env`: the github sink uses the GitHub token of the run",
                );
            }
            Some(_) if !webhook => {}
            Some(v)
                if v.value.is_empty()
                    || !v.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || v.value.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                ctx.err(
                    Code::InvalidUrlEnv,
                    file,
                    v.pos,
                    format!("sink `{}`: `{}` is not an environment variable name", name.value, v.value),
                    "name a variable with letters, digits and `_`, e.g. `url_env: SLACK_WEBHOOK_URL`",
                );
            }
            None if webhook && s.url.is_none() => {
                ctx.err(
                    Code::InvalidUrlEnv,
                    file,
                    name.pos,
                    format!("sink `{}`: no `url_env`", name.value),
                    "name the environment variable that holds the webhook URL, e.g. `url_env: SLACK_WEBHOOK_URL`",
                );
            }
            _ => {}
        }
        let mut events = Vec::new();
        for e in s.events.iter().flatten() {
            if EVENT_KINDS.contains(&e.value.as_str()) {
                events.push(e.value.clone());
            } else {
                ctx.err(
                    Code::UnknownEventKind,
                    file,
                    e.pos,
                    format!("sink `{}`: unknown event `{}`", name.value, e.value),
                    format!("known events: {}", EVENT_KINDS.join(", ")),
                );
            }
        }
        if let Some(kind) = kind {
            out.sinks.push(Sink { name: name.value.clone(), kind, url_env: s.url_env.as_ref().map(|v| v.value.clone()), events });
        }
    }
    out
}

/// The `monitor` section: one check per rule, known roles, valid globs.
fn check_monitor(ctx: &mut Ctx, file: &str, m: &Sp<RawMonitor>, roles: &BTreeMap<String, Role>) -> Monitor {
    let mut out = Monitor::default();
    if let Some(g) = &m.grace {
        out.grace = duration_or_zero(ctx, file, g, "monitor.grace").unwrap_or(out.grace);
    }
    if let Some(l) = &m.lookback {
        out.lookback = duration(ctx, file, l, "monitor.lookback").unwrap_or(out.lookback);
    }
    let mut names = BTreeSet::new();
    for r in &m.rules {
        if !names.insert(r.name.value.clone()) {
            ctx.err(Code::DuplicateName, file, r.name.pos, format!("monitor rule `{}` is defined twice", r.name.value), "give each rule a distinct name");
        }
        for role in r.roles.iter().flatten() {
            if !roles.contains_key(&role.value) {
                let known = roles.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
                ctx.err(
                    Code::MonitorUnknownRole,
                    file,
                    role.pos,
                    format!("monitor rule `{}`: unknown role `{}`", r.name.value, role.value),
                    format!("name a role defined under `roles:` ({known}), or drop `roles` to apply the rule to every role"),
                );
            }
        }
        let outside = r.outside_window.as_ref().filter(|b| b.value);
        let given = usize::from(r.deny_actions.is_some()) + usize::from(r.max_events_per_hour.is_some()) + usize::from(outside.is_some());
        if given != 1 {
            ctx.err(
                Code::InvalidMonitorRule,
                file,
                r.name.pos,
                format!("monitor rule `{}` needs exactly one check, found {given}", r.name.value),
                "give one of `deny_actions: [\"iam:*\"]`, `max_events_per_hour: N` or `outside_window: true`; split the rule in two to check both",
            );
            continue;
        }
        let check = if let Some(globs) = &r.deny_actions {
            if globs.is_empty() {
                ctx.err(
                    Code::InvalidMonitorRule,
                    file,
                    r.name.pos,
                    format!("monitor rule `{}`: `deny_actions` is empty", r.name.value),
                    "list globs such as `iam:*`",
                );
            }
            for g in globs {
                if !valid_action_glob(&g.value) {
                    ctx.err(
                        Code::InvalidMonitorRule,
                        file,
                        g.pos,
                        format!("monitor rule `{}`: `{}` is not an action glob", r.name.value, g.value),
                        "write `service:Action` with `*` and `?` as wildcards, e.g. `iam:*` or `*:Delete*`",
                    );
                }
            }
            MonitorCheck::DenyActions(globs.iter().map(|g| g.value.to_ascii_lowercase()).collect())
        } else if let Some(n) = &r.max_events_per_hour {
            if n.value == 0 {
                ctx.err(
                    Code::InvalidMonitorRule,
                    file,
                    n.pos,
                    format!("monitor rule `{}`: `max_events_per_hour` must be at least 1", r.name.value),
                    "use `deny_actions: [\"*\"]` to forbid all activity",
                );
            }
            MonitorCheck::MaxEventsPerHour(n.value)
        } else {
            MonitorCheck::OutsideWindow
        };
        out.rules.push(MonitorRule {
            name: r.name.value.clone(),
            roles: r.roles.iter().flatten().map(|x| x.value.clone()).collect(),
            check,
            revoke: r.revoke.as_ref().is_some_and(|b| b.value),
        });
    }
    out
}

/// `service:Action` globs: a colon-separated pair, or `*` alone.
fn valid_action_glob(g: &str) -> bool {
    let chars_ok = !g.is_empty() && g.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '*' | '?'));
    chars_ok && (g == "*" || g.split(':').count() == 2)
}

/// A duration that may be zero (`grace: 0s`).
fn duration_or_zero(ctx: &mut Ctx, file: &str, s: &Sp<String>, what: &str) -> Option<Duration> {
    if s.value.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Some(Duration::from_secs(0));
    }
    duration(ctx, file, s, what)
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

fn single_section<'a, T>(ctx: &mut Ctx, what: &str, file: &'a str, section: Option<&'a Sp<T>>, slot: &mut Option<(&'a str, &'a Sp<T>)>) {
    let Some(s) = section else { return };
    if let Some((prev, ps)) = slot {
        ctx.err(
            Code::DuplicateName,
            file,
            s.pos,
            format!("`{what}` is defined twice"),
            format!("it is also defined at {prev}:{}:{}; keep one", ps.pos.line, ps.pos.column),
        );
        // At both, as for names: the PR's file must carry the annotation.
        ctx.err(
            Code::DuplicateName,
            prev,
            ps.pos,
            format!("`{what}` is defined twice"),
            format!("it is also defined at {file}:{}:{}; keep one", s.pos.line, s.pos.column),
        );
    } else {
        *slot = Some((file, s));
    }
}

fn duration(ctx: &mut Ctx, file: &str, s: &Sp<String>, what: &str) -> Option<Duration> {
    match s.value.parse::<Duration>() {
        Ok(d) if d.secs() > 0 => Some(d),
        Ok(_) => {
            ctx.err(Code::InvalidDuration, file, s.pos, format!("`{what}` must be positive"), "write a duration like `1h` or `8h`");
            None
        }
        Err(e) => {
            ctx.err(Code::InvalidDuration, file, s.pos, e.to_string(), "units: s, m, h, d, w (largest first), e.g. `1h30m`");
            None
        }
    }
}

fn group_ref(ctx: &mut Ctx, file: &str, g: &Sp<String>, groups: &BTreeSet<String>, owner: &str) {
    if !groups.contains(&g.value) {
        let known = groups.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        ctx.err(Code::UnknownGroup, file, g.pos, format!("{owner}: unknown group `{}`", g.value), format!("define it under `groups:`; known groups: {known}"));
    }
}

fn approvals(ctx: &mut Ctx, file: &str, raw: &[RawApproval], groups: &BTreeSet<String>, defs: &BTreeMap<String, Group>, owner: &str) -> Vec<ApprovalRule> {
    let mut out = Vec::new();
    for a in raw {
        for g in &a.from {
            group_ref(ctx, file, g, groups, owner);
        }
        if a.count.value == 0 {
            ctx.err(
                Code::InvalidTiers,
                file,
                a.count.pos,
                format!("{owner}: an approval `count` must be at least 1"),
                "remove the entry to require no approval from these groups",
            );
        }
        let pool: BTreeSet<&String> = a.from.iter().filter_map(|g| defs.get(&g.value)).flat_map(|g| g.members.iter()).collect();
        let has_team = a.from.iter().any(|g| defs.get(&g.value).is_some_and(|g| g.github_team.is_some()));
        // An unknown group is already an error; counting its (zero) members would only add noise.
        let all_known = a.from.iter().all(|g| defs.contains_key(&g.value));
        if !has_team && all_known && (pool.len() as u64) < u64::from(a.count.value) {
            ctx.d.push(
                Diagnostic::new(
                    Code::UnsatisfiableApproval,
                    file,
                    a.count.pos,
                    format!("{owner}: needs {} approvals but the groups have only {} members", a.count.value, pool.len()),
                )
                .help("add members or lower the count: requests judged by this rule can never be approved"),
            );
        }
        out.push(ApprovalRule { from: a.from.iter().map(|g| g.value.clone()).collect(), count: a.count.value });
    }
    out
}

fn check_principal(ctx: &mut Ctx, file: &str, kind: ProviderKind, v: &Sp<String>) {
    let ok = match kind {
        ProviderKind::AwsIam => v.value.starts_with("arn:aws") && (v.value.contains(":user/") || v.value.contains(":role/")),
        ProviderKind::GcpIam => ["user:", "serviceAccount:", "group:", "principal:", "principalSet:"].iter().any(|p| v.value.starts_with(p)),
        ProviderKind::AzureRbac => {
            let g: Vec<&str> = v.value.split('-').collect();
            g.iter().map(|x| x.len()).eq([8, 4, 4, 4, 12]) && g.iter().all(|x| x.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        _ => !v.value.trim().is_empty(),
    };
    if !ok {
        let help = match kind {
            ProviderKind::AwsIam => "an IAM user or role ARN, e.g. `arn:aws:iam::111111111111:user/alice`",
            ProviderKind::GcpIam => "an IAM member, e.g. `user:alice@example.com`",
            ProviderKind::AzureRbac => "the Entra object id (a GUID) of the user, group or service principal",
            _ => "a non-empty principal name",
        };
        ctx.err(Code::UnknownIdentity, file, v.pos, format!("`{}` is not a valid {} principal", v.value, kind), help);
    }
}

fn check_config(ctx: &mut Ctx, file: &str, name: &str, r: &RawResource) {
    let provider = r.provider.value;
    let (required, optional) = config_keys(provider);
    let pos = r.config.as_ref().map_or(r.provider.pos, |c| c.pos);
    let config = r.config.as_ref().map(|c| &c.value);
    for key in required {
        if !config.is_some_and(|c| c.contains_key(*key)) {
            ctx.err(
                Code::InvalidResourceConfig,
                file,
                pos,
                format!("resource `{name}` ({provider}): config needs `{key}`"),
                format!("add `{key}` under `config:`"),
            );
        }
    }
    for (key, value) in config.into_iter().flatten() {
        let lower = key.to_ascii_lowercase();
        if SECRET_KEYS.iter().any(|s| lower == *s) || lower.ends_with("_password") || lower.ends_with("_secret") {
            ctx.err(
                Code::InlineSecret,
                file,
                pos,
                format!("resource `{name}`: `{key}` looks like a secret written inline"),
                "secrets never go in the repository: name an environment variable instead (e.g. `dsn_env: ORDERS_DB_DSN`)",
            );
        } else if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
            let known: Vec<&str> = required.iter().chain(optional.iter()).copied().collect();
            ctx.err(
                Code::InvalidResourceConfig,
                file,
                pos,
                format!("resource `{name}` ({provider}): unknown config key `{key}`"),
                format!("known keys for {provider}: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") }),
            );
        } else if !value.is_string() && !value.is_boolean() && !value.as_array().is_some_and(|a| a.iter().all(|v| v.is_string())) {
            ctx.err(Code::InvalidResourceConfig, file, pos, format!("resource `{name}`: config `{key}` must be a string"), "quote the value");
        } else if key.ends_with("_env")
            && !value.as_str().is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        {
            ctx.err(
                Code::InvalidResourceConfig,
                file,
                pos,
                format!("resource `{name}`: `{key}` must name an environment variable"),
                "write the variable's name in capitals, e.g. `ORDERS_DB_DSN`",
            );
        }
    }
}

fn check_grants(ctx: &mut Ctx, file: &str, role: &str, g: &Sp<RawGrants>) -> Grants {
    let v = &g.value;
    if let Some(a) = &v.aws_iam {
        match (&a.policy_template, &a.managed_policy_arn) {
            (Some(_), Some(_)) | (None, None) => ctx.err(
                Code::InvalidGrant,
                file,
                a.pos,
                format!("role `{role}`: aws-iam grant needs exactly one of `policy_template` or `managed_policy_arn`"),
                "name a template under templates/ or an existing policy ARN",
            ),
            (None, Some(arn)) if !arn.starts_with("arn:aws") => {
                ctx.err(Code::InvalidGrant, file, a.pos, format!("role `{role}`: `{arn}` is not a policy ARN"), "e.g. `arn:aws:iam::aws:policy/ReadOnlyAccess`")
            }
            _ => {}
        }
    }
    if let Some(k) = &v.kubernetes {
        let ok = matches!((&k.cluster_role, &k.role, &k.namespace), (Some(_), None, _) | (None, Some(_), Some(_)));
        if !ok {
            ctx.err(
                Code::InvalidGrant,
                file,
                k.pos,
                format!("role `{role}`: kubernetes grant needs `cluster_role`, or `role` with `namespace`"),
                "e.g. `{ cluster_role: view }` or `{ role: debug, namespace: payments }`",
            );
        }
    }
    let name_ok = |s: &str| !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if let Some(pg) = &v.postgres
        && !name_ok(&pg.role)
    {
        ctx.err(
            Code::InvalidGrant,
            file,
            pg.pos,
            format!("role `{role}`: `{}` is not a plain PostgreSQL role name", pg.role),
            "use letters, digits, `_` and `-` (at most 63)",
        );
    }
    if let Some(gcp) = &v.gcp_iam
        && !(gcp.role.starts_with("roles/") || gcp.role.contains("/roles/"))
    {
        ctx.err(
            Code::InvalidGrant,
            file,
            gcp.pos,
            format!("role `{role}`: `{}` is not a GCP role", gcp.role),
            "e.g. `roles/cloudsql.viewer` or `projects/P/roles/custom`",
        );
    }
    let grants = Grants {
        local: v.local.as_ref().map(|x| x.value.clone()),
        aws_iam: v.aws_iam.as_ref().map(|x| x.value.clone()),
        aws_sso: v.aws_sso.as_ref().map(|x| x.value.clone()),
        gcp_iam: v.gcp_iam.as_ref().map(|x| x.value.clone()),
        azure_rbac: v.azure_rbac.as_ref().map(|x| x.value.clone()),
        kubernetes: v.kubernetes.as_ref().map(|x| x.value.clone()),
        postgres: v.postgres.as_ref().map(|x| x.value.clone()),
    };
    if grants.providers().is_empty() {
        ctx.err(Code::InvalidGrant, file, g.pos, format!("role `{role}` grants nothing"), "add at least one provider under `grants:`");
    }
    grants
}

fn check_factors(ctx: &mut Ctx, file: &str, f: &RawFactors) -> Factors {
    let off_hours = f.off_hours.as_ref().and_then(|o| {
        let tz = match o.timezone.value.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                ctx.err(
                    Code::InvalidBusinessHours,
                    file,
                    o.timezone.pos,
                    format!("`{}` is not an IANA time zone", o.timezone.value),
                    "e.g. `Europe/Berlin`, `America/New_York`, `UTC`",
                );
                None
            }
        };
        let mut days = BTreeSet::new();
        for d in &o.days {
            match d.value.parse::<Weekday>() {
                Ok(w) => {
                    days.insert(w.num_days_from_monday());
                }
                Err(_) => ctx.err(Code::InvalidBusinessHours, file, d.pos, format!("`{}` is not a weekday", d.value), "use Mon, Tue, Wed, Thu, Fri, Sat, Sun"),
            }
        }
        let hours = parse_hours(&o.hours.value);
        if hours.is_none() {
            ctx.err(
                Code::InvalidBusinessHours,
                file,
                o.hours.pos,
                format!("`{}` is not a business-hours range", o.hours.value),
                "write `HH:MM-HH:MM` with the start before the end, e.g. `08:00-18:00`",
            );
        }
        let (from_minute, to_minute) = hours?;
        Some(OffHours { points: o.value.points, timezone: tz?, days, from_minute, to_minute })
    });
    Factors {
        sensitivity: f.sensitivity.clone().unwrap_or_default(),
        privilege: f.privilege.clone().unwrap_or_default(),
        environment: f.environment.clone().unwrap_or_default(),
        per_hour: f.per_hour.unwrap_or(0),
        off_hours,
        first_time: f.first_time.unwrap_or(0),
        early_revocations: f.early_revocations.unwrap_or(0),
        active_grants: f.active_grants.unwrap_or(0),
        missing_ticket: f.missing_ticket.unwrap_or(0),
        break_glass: f.break_glass.unwrap_or(0),
        monitor_findings: f.monitor_findings.unwrap_or(0),
    }
}

/// `HH:MM-HH:MM` into minutes since midnight; `24:00` allowed as an end.
fn parse_hours(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let m = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || h == 24 && m == 0)).then_some(h * 60 + m)
    };
    let (from, to) = (m(a)?, m(b)?);
    (from < to).then_some((from, to))
}

fn check_tiers(ctx: &mut Ctx, file: &str, tiers: &Sp<Vec<RawTier>>, groups: &BTreeSet<String>, defs: &BTreeMap<String, Group>) -> Vec<Tier> {
    let mut out: Vec<Tier> = Vec::new();
    if tiers.value.is_empty() {
        ctx.err(Code::InvalidTiers, file, tiers.pos, "`risk.tiers` is empty", "define tiers in ascending `max_score`, the last with `max_score: 100`");
    }
    let mut names = BTreeSet::new();
    for t in &tiers.value {
        if !names.insert(t.name.value.clone()) {
            ctx.err(Code::DuplicateName, file, t.name.pos, format!("tier `{}` is defined twice", t.name.value), "give each tier a distinct name");
        }
        if let Some(prev) = out.last()
            && t.max_score.value <= prev.max_score
        {
            ctx.err(
                Code::InvalidTiers,
                file,
                t.max_score.pos,
                format!("tier `{}` has max_score {} but the tier before it has {}", t.name.value, t.max_score.value, prev.max_score),
                "tiers must ascend by max_score",
            );
        }
        if !(0..=100).contains(&t.max_score.value) {
            ctx.err(
                Code::InvalidTiers,
                file,
                t.max_score.pos,
                format!("tier `{}`: max_score {} is outside 0..=100", t.name.value, t.max_score.value),
                "scores are clamped to 0..100",
            );
        }
        let max_duration = t.max_duration.as_ref().and_then(|d| duration(ctx, file, d, "tier max_duration"));
        out.push(Tier {
            name: t.name.value.clone(),
            max_score: t.max_score.value,
            approvals: approvals(ctx, file, &t.approvals, groups, defs, &format!("tier `{}`", t.name.value)),
            max_duration,
        });
    }
    if let Some(last) = tiers.value.last()
        && last.max_score.value < 100
    {
        ctx.err(
            Code::InvalidTiers,
            file,
            last.max_score.pos,
            format!("the last tier `{}` ends at {}, so scores above it have no tier", last.name.value, last.max_score.value),
            "set the last tier's max_score to 100",
        );
    }
    out
}
