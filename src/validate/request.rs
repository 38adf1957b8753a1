//! Loading one request file and checking it against a policy.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::diag::{Code, Diagnostic, Diagnostics, Pos};
use crate::model::policy::{Policy, ProviderKind};
use crate::model::request::{RawRequest, Request, Window};
use crate::model::{Duration, Sp};
use crate::source::{Entry, EntryKind, SourceFile, Tree, parse_yaml};

pub const REQUEST_DIR: &str = "requests";
pub const MIN_REASON_CHARS: usize = 10;

/// Is `id` a valid request id (`[a-z0-9][a-z0-9._-]{2,79}`)?
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (3..=80).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
}

/// The id of a request file: its stem, if the path is a request path at all.
pub fn request_id(path: &str) -> Option<&str> {
    let name = path.strip_prefix("requests/")?.rsplit('/').next()?;
    name.strip_suffix(".yaml")
}

/// Should this path under requests/ be ignored silently (README, .gitkeep)?
pub fn is_ignorable(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with('.') || name.ends_with(".md")
}

/// Reads and parses one request file (no policy checks yet). All problems go
/// to `d`; `None` means the file could not be turned into a request at all.
pub fn load_request(tree: &dyn Tree, entry: &Entry, d: &mut Diagnostics) -> Option<Request> {
    parse_request(entry, || tree.read_source(entry), d)
}

/// [`load_request`] with the file's text from `read` (called at most once,
/// and only for a plain file with a request name): `check` reads every file
/// from its tree on one thread, then parses them on several.
pub fn parse_request(entry: &Entry, read: impl FnOnce() -> Result<SourceFile, Diagnostic>, d: &mut Diagnostics) -> Option<Request> {
    let path = entry.path.as_str();
    if entry.kind != EntryKind::File {
        // A link (to a file or a directory) or a submodule: refused as such,
        // whatever its name.
        if let Err(diag) = read() {
            d.push(diag);
        }
        return None;
    }
    let Some(id) = request_id(path) else {
        if let Some(stem) = path.strip_suffix(".yml") {
            // A request the author meant, under a name that grants nothing: an
            // error, so the PR cannot pass green while nothing is granted.
            d.push(
                Diagnostic::new(Code::RequestNotYaml, path, Pos::FILE, format!("`{path}` is a request file named `.yml`; requests must end in `.yaml`"))
                    .help(format!("rename it: `git mv {path} {stem}.yaml`")),
            );
        } else if !is_ignorable(path) {
            d.push(
                Diagnostic::new(Code::UnexpectedFile, path, Pos::FILE, format!("`{path}` is not a `.yaml` file and is ignored"))
                    .help("a request is `requests/<id>.yaml`; this file grants nothing"),
            );
        }
        return None;
    };
    if !valid_id(id) {
        d.push(
            Diagnostic::new(Code::InvalidRequestId, path, Pos::FILE, format!("request id `{id}` (the file name) is not valid"))
                .help("rename the file: 3-80 characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit, e.g. `2026-11-23-alice-orders-db.yaml`"),
        );
    }
    let file = match read() {
        Ok(f) => f,
        Err(diag) => {
            d.push(diag);
            return None;
        }
    };
    let raw: RawRequest = match parse_yaml(&file, "request") {
        Ok(r) => r,
        Err(diag) if diag.code == Code::UnknownField && diag.message.starts_with("unknown field `id`") => {
            // An id written in the file could only disagree with the real one.
            d.push(
                Diagnostic::new(
                    Code::InvalidRequestId,
                    path,
                    Pos::new(diag.line, diag.column),
                    format!("a request has no `id` field: its id is its file name, `{id}`"),
                )
                .help("remove the `id:` line; to change the id, rename the file")
                .len(2),
            );
            return None;
        }
        Err(diag) => {
            d.push(diag);
            return None;
        }
    };
    Some(lower_raw(id, path, raw, d))
}

fn parse_time(s: &Sp<String>, field: &str, path: &str, d: &mut Diagnostics) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(s.value.trim()) {
        Ok(t) if t.with_timezone(&Utc) > crate::render::escape::max_time() => {
            d.push(
                Diagnostic::new(Code::BadTimestamp, path, s.pos, format!("`{field}: {}` is after 9999-12-31T23:59:59Z", s.value))
                    .help("RFC 3339 has four-digit years: write a time before the year 10000")
                    .len(s.value.chars().count()),
            );
            None
        }
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            d.push(
                Diagnostic::new(Code::BadTimestamp, path, s.pos, format!("`{field}: {}` is not an RFC 3339 time", s.value))
                    .help("write it like `2026-11-23T14:00:00Z` (with a time zone)")
                    .len(s.value.chars().count()),
            );
            None
        }
    }
}

/// Parses a raw request's times and durations; problems go to `d`.
pub fn lower_raw(id: &str, path: &str, raw: RawRequest, d: &mut Diagnostics) -> Request {
    let duration = raw.duration.as_ref().and_then(|s| match s.value.parse::<Duration>() {
        Ok(v) if v.secs() > 0 => Some(v),
        Ok(_) => {
            d.push(Diagnostic::new(Code::BadDuration, path, s.pos, "duration must be greater than zero").help("e.g. `duration: 2h`").len(s.value.len()));
            None
        }
        Err(e) => {
            d.push(Diagnostic::new(Code::BadDuration, path, s.pos, e.to_string()).help("units: s, m, h, d, w, largest first, e.g. `1h30m`").len(s.value.len()));
            None
        }
    });
    let start = raw.start.as_ref().and_then(|s| parse_time(s, "start", path, d));
    let until = raw.until.as_ref().and_then(|s| parse_time(s, "until", path, d));
    match (&raw.duration, &raw.until) {
        (Some(dur), Some(_)) => d.push(
            Diagnostic::new(Code::WindowConflict, path, dur.pos, "both `duration` and `until` are given")
                .help("keep one: `duration` for a length, `until` for an end time"),
        ),
        (None, None) => d.push(
            Diagnostic::new(Code::WindowConflict, path, raw.requester.pos, "neither `duration` nor `until` is given")
                .help("add `duration: 2h` (or `until:` with an RFC 3339 time)"),
        ),
        _ => {}
    }
    if let (Some(s), Some(u), Some(us)) = (start, until, &raw.until)
        && u <= s
    {
        d.push(
            Diagnostic::new(Code::BadTimestamp, path, us.pos, format!("`until` ({u}) is not after `start` ({s})")).help("the window must end after it starts"),
        );
    }
    Request {
        id: id.to_string(),
        file: path.to_string(),
        requester: raw.requester.value.to_ascii_lowercase(),
        role: raw.role.value.clone(),
        resources: raw.resources.value.iter().map(|r| r.value.clone()).collect(),
        duration,
        start,
        until,
        reason: raw.reason.value.0.clone(),
        ticket: raw.ticket.as_ref().map(|t| t.value.clone()),
        break_glass: raw.break_glass.as_ref().is_some_and(|b| b.value.0),
        extends: raw.extends.as_ref().map(|e| e.value.clone()),
        raw,
    }
}

/// What a request is judged against, besides the policy.
pub struct RequestContext<'a> {
    /// The current time (`--now`): a new request may not end before it.
    pub now: DateTime<Utc>,
    /// The default start for a request without `start`.
    pub default_start: DateTime<Utc>,
    /// Ids of requests known on main (for `extends`).
    pub known_ids: &'a BTreeSet<String>,
    /// Check "ends in the past" (off for unchanged requests in `--all`).
    pub check_past: bool,
}

/// Every policy rule over one request. Pure: reads only its arguments.
pub fn validate_request(req: &Request, policy: &Policy, ctx: &RequestContext, d: &mut Diagnostics) {
    let raw = &req.raw;
    let path = req.file.as_str();
    let role = policy.roles.get(&req.role);
    if role.is_none() {
        let known: Vec<&str> = policy.roles.keys().map(String::as_str).collect();
        d.push(
            Diagnostic::new(Code::UnknownRole, path, raw.role.pos, format!("unknown role `{}`", req.role))
                .help(format!("roles defined in policies/: {}", known.join(", ")))
                .len(req.role.chars().count()),
        );
    }
    // A duration that parses but ends beyond any representable time leaves no
    // window at all: every later check would skip it, so refuse it here.
    if let (None, Some(_), None, Some(dur)) = (req.window(ctx.default_start), req.duration, req.until, &raw.duration) {
        d.push(
            Diagnostic::new(Code::BadDuration, path, dur.pos, format!("duration `{}` is too long to have an end", dur.value))
                .help("access windows are hours or days, e.g. `duration: 2h`")
                .len(dur.value.chars().count()),
        );
    }
    let identity = policy.identities.get(&req.requester);
    if identity.is_none() {
        d.push(
            Diagnostic::new(Code::UnknownRequester, path, raw.requester.pos, format!("requester `{}` has no entry in `identities`", raw.requester.value))
                .help("add the login under `identities:` in policies/ (in its own PR)")
                .len(raw.requester.value.chars().count()),
        );
    }
    if raw.resources.value.is_empty() {
        d.push(
            Diagnostic::new(Code::UnknownResource, path, raw.resources.pos, "no resources listed")
                .help("list at least one resource, e.g. `resources: [orders-db]`"),
        );
    }
    let mut seen = BTreeSet::new();
    for r in &raw.resources.value {
        if !seen.insert(r.value.as_str()) {
            d.push(
                Diagnostic::new(Code::DuplicateResource, path, r.pos, format!("resource `{}` is listed twice", r.value))
                    .help("remove the duplicate")
                    .len(r.value.chars().count()),
            );
            continue;
        }
        let Some(res) = policy.resources.get(&r.value) else {
            let applicable: Vec<&str> = match role {
                Some(role) => policy.resources.iter().filter(|(_, x)| role.grants.has(x.provider)).map(|(k, _)| k.as_str()).collect(),
                None => policy.resources.keys().map(String::as_str).collect(),
            };
            d.push(
                Diagnostic::new(Code::UnknownResource, path, r.pos, format!("unknown resource `{}`", r.value))
                    .help(format!("resources this role applies to: {}", applicable.join(", ")))
                    .len(r.value.chars().count()),
            );
            continue;
        };
        if let Some(role) = role
            && !role.grants.has(res.provider)
        {
            let providers: Vec<&str> = role.grants.providers().iter().map(|p| p.as_str()).collect();
            d.push(
                Diagnostic::new(
                    Code::NoGrantForProvider,
                    path,
                    r.pos,
                    format!("role `{}` has no grant for provider `{}` (resource `{}`)", req.role, res.provider, r.value),
                )
                .help(format!("this role grants on: {}; pick a resource on one of them or another role", providers.join(", ")))
                .len(r.value.chars().count()),
            );
        }
        if let Some(id) = identity
            && res.provider != ProviderKind::Local
            && id.principal(&req.requester, res.provider).is_none()
        {
            let key = res.provider.identity_key().unwrap_or("");
            d.push(
                Diagnostic::new(
                    Code::NoPrincipal,
                    path,
                    r.pos,
                    format!("`{}` has no `{key}` principal for resource `{}` ({})", raw.requester.value, r.value, res.provider),
                )
                .help(format!("add `{key}:` to their entry under `identities:`"))
                .len(r.value.chars().count()),
            );
        }
    }
    if let Some(role) = role {
        if !policy.in_any(&req.requester, &role.eligible) {
            d.push(
                Diagnostic::new(
                    Code::NotEligible,
                    path,
                    raw.requester.pos,
                    format!("`{}` is not a member of a group eligible for role `{}`", raw.requester.value, req.role),
                )
                .help(format!("eligible groups: {}; membership changes go through a policy PR", role.eligible.join(", ")))
                .len(raw.requester.value.chars().count()),
            );
        }
        let window = req.window(ctx.default_start);
        if let Some(w) = window {
            let len = w.length();
            let at = raw.duration.as_ref().or(raw.until.as_ref()).map_or(raw.role.pos, |s| s.pos);
            if len > role.max_duration && !req.break_glass {
                d.push(
                    Diagnostic::new(
                        Code::DurationTooLong,
                        path,
                        at,
                        format!("the window is {len}, longer than role `{}` allows ({})", req.role, role.max_duration),
                    )
                    .help(format!("ask for at most {}; extend later with `gitgrant extend`", role.max_duration)),
                );
            }
            if ctx.check_past && w.end <= ctx.now {
                d.push(
                    Diagnostic::new(
                        Code::EndsInPast,
                        path,
                        raw.start.as_ref().or(raw.until.as_ref()).map_or(at, |s| s.pos),
                        format!(
                            "the window ends at {}, before the check time {}",
                            w.end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                            ctx.now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                        ),
                    )
                    .help("move `start` or `until` into the future"),
                );
            }
        }
        if req.break_glass {
            let bg_pos = raw.break_glass.as_ref().map_or(raw.role.pos, |b| b.pos);
            match &policy.break_glass {
                None => d.push(
                    Diagnostic::new(Code::BreakGlassNotAllowed, path, bg_pos, "break-glass is not enabled in the policies")
                        .help("remove `break_glass: true`, or add a `break_glass:` section to policies/"),
                ),
                Some(_) if !role.break_glass => d.push(
                    Diagnostic::new(Code::BreakGlassNotAllowed, path, bg_pos, format!("role `{}` cannot be requested with break-glass", req.role))
                        .help("request it normally, or ask for a role that allows break-glass"),
                ),
                Some(bg) => {
                    if let Some(w) = window {
                        let limit = bg.max_duration.min(role.max_duration);
                        if w.length() > limit {
                            d.push(
                                Diagnostic::new(
                                    Code::DurationTooLong,
                                    path,
                                    raw.duration.as_ref().or(raw.until.as_ref()).map_or(bg_pos, |s| s.pos),
                                    format!("a break-glass window is at most {limit}; this one is {}", w.length()),
                                )
                                .help(format!("shorten it to {limit} or less")),
                            );
                        }
                    }
                }
            }
        }
        let ticket = req.ticket.as_deref().map(str::trim).filter(|t| !t.is_empty());
        match (ticket, &role.ticket_pattern) {
            (None, _) if role.require_ticket => d.push(
                Diagnostic::new(Code::TicketMissing, path, raw.role.pos, format!("role `{}` requires a ticket", req.role))
                    .len(req.role.chars().count())
                    .help(role.ticket_pattern.as_ref().map_or("add `ticket: <id>`".to_string(), |p| format!("add `ticket:` matching `{}`", p.as_str()))),
            ),
            (Some(t), Some(p)) if !p.is_match(t) => {
                let pos = raw.ticket.as_ref().map_or(raw.reason.pos, |x| x.pos);
                d.push(
                    Diagnostic::new(Code::TicketPattern, path, pos, format!("ticket `{t}` does not match `{}`", p.as_str()))
                        .help("use the ticket id format your team uses for this role")
                        .len(t.chars().count()),
                );
            }
            _ => {}
        }
    }
    if let Some(w) = req.window(ctx.default_start)
        && w.end > crate::render::escape::max_time()
    {
        let at = raw.duration.as_ref().or(raw.until.as_ref()).or(raw.start.as_ref()).map_or(raw.requester.pos, |s| s.pos);
        d.push(
            Diagnostic::new(Code::BadTimestamp, path, at, "the window ends after 9999-12-31T23:59:59Z")
                .help("RFC 3339 has four-digit years: end the window before the year 10000"),
        );
    }
    // Visible characters: whitespace and invisible formatting characters (zero-width spaces) do not explain anything.
    let visible = crate::render::escape::visible_len(&req.reason);
    if visible < MIN_REASON_CHARS {
        d.push(
            Diagnostic::new(
                Code::ReasonTooShort,
                path,
                raw.reason.pos,
                format!("the reason has {visible} visible characters; at least {MIN_REASON_CHARS} are needed"),
            )
            .help("say why you need access, e.g. `INC-4211: orders stuck in pending`"),
        );
    }
    if let Some(e) = &raw.extends
        && !ctx.known_ids.contains(&e.value)
    {
        d.push(
            Diagnostic::new(Code::UnknownExtends, path, e.pos, format!("`extends: {}` names no request on main", e.value))
                .help("name the id (file stem) of a merged request")
                .len(e.value.chars().count()),
        );
    }
}

/// An extension (`extends: <id>`) continues `old`: the same requester and
/// role, starting exactly when `old` ends. It is judged as a new request
/// besides, so widening it needs the same approvals as asking afresh.
pub fn validate_extends(req: &Request, window: Option<Window>, old: &Request, old_window: Option<Window>, d: &mut Diagnostics) {
    let raw = &req.raw;
    let Some(ext) = &raw.extends else { return };
    let path = req.file.as_str();
    if req.requester != old.requester {
        d.push(
            Diagnostic::new(
                Code::ExtendsMismatch,
                path,
                raw.requester.pos,
                format!("`{}` is a request of `{}`, not of `{}`", ext.value, old.requester, req.requester),
            )
            .help("only the requester's own access can be extended; ask for it in a new request without `extends`")
            .len(raw.requester.value.chars().count()),
        );
    }
    if req.role != old.role {
        d.push(
            Diagnostic::new(Code::ExtendsMismatch, path, raw.role.pos, format!("`{}` is for role `{}`, not `{}`", ext.value, old.role, req.role))
                .help("an extension keeps the role; ask for another role in a new request")
                .len(raw.role.value.chars().count()),
        );
    }
    if let (Some(w), Some(ow)) = (window, old_window)
        && w.start != ow.end
    {
        let end = ow.end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        d.push(
            Diagnostic::new(
                Code::ExtendsMismatch,
                path,
                raw.start.as_ref().map_or(ext.pos, |s| s.pos),
                format!(
                    "an extension of `{}` must start when it ends ({end}); this one starts at {}",
                    ext.value,
                    w.start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
            )
            .help(format!("set `start: {end}` (`gitgrant extend {} --by DUR` writes it)", ext.value)),
        );
    }
}
