//! A request before it is a file: what `request` and `extend` write, and how
//! they name it. Judging it is `check`'s job (see [`crate::check::run_check_on`]).

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::validate::request::valid_id;

/// The fields of a request file; `None` fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub duration: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub break_glass: bool,
    pub extends: Option<String>,
}

/// A YAML string that stays a string: plain when it cannot be read as
/// anything else (`alice`, `INC-4211`, `2h`), else JSON-quoted (valid YAML).
fn quote(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && s.parse::<f64>().is_err()
        && !s.starts_with("0x")
        && !s.starts_with("0o")
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf");
    if plain { s.to_string() } else { serde_json::Value::String(s.to_string()).to_string() }
}

impl Draft {
    /// The file text, with the schema comment editors pick up.
    pub fn to_yaml(&self) -> String {
        let mut s = String::from("# yaml-language-server: $schema=../docs/schema/request.json\n");
        s += &format!("requester: {}\n", quote(&self.requester));
        s += &format!("role: {}\n", quote(&self.role));
        s += &format!("resources: [{}]\n", self.resources.iter().map(|r| quote(r)).collect::<Vec<_>>().join(", "));
        if let Some(start) = self.start {
            s += &format!("start: {}\n", start.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
        s += &format!("duration: {}\n", quote(&self.duration));
        s += &format!("reason: {}\n", quote(&self.reason));
        if let Some(t) = &self.ticket {
            s += &format!("ticket: {}\n", quote(t));
        }
        if self.break_glass {
            s += "break_glass: true\n";
        }
        if let Some(e) = &self.extends {
            s += &format!("extends: {}\n", quote(e));
        }
        s
    }

    /// `<date>-<user>-<role>`, the date being the start's (or `today`'s),
    /// with `-2`, `-3`... when `taken` says the id is used. Characters an id
    /// cannot hold become `-`.
    pub fn id(&self, today: DateTime<Utc>, taken: &dyn Fn(&str) -> bool) -> Option<String> {
        let date = self.start.unwrap_or(today).format("%Y-%m-%d");
        let clean =
            |s: &str| -> String { s.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '-' }).collect() };
        let stem: String = format!("{date}-{}-{}", clean(&self.requester), clean(&self.role)).chars().take(74).collect();
        (1..1000).map(|n| if n == 1 { stem.clone() } else { format!("{stem}-{n}") }).find(|id| valid_id(id) && !taken(id))
    }
}

/// The GitHub login of whoever runs gitgrant, from GitHub CLI's config
/// (`$GH_CONFIG_DIR`, `$XDG_CONFIG_HOME/gh` or `~/.config/gh`, `hosts.yml`):
/// the `user:` of github.com, else of the first host.
pub fn gh_login() -> Option<String> {
    let dir = match (std::env::var_os("GH_CONFIG_DIR"), std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME")) {
        (Some(d), _, _) if !d.is_empty() => std::path::PathBuf::from(d),
        (_, Some(x), _) if !x.is_empty() => Path::new(&x).join("gh"),
        (_, _, Some(h)) => Path::new(&h).join(".config/gh"),
        _ => return None,
    };
    let text = std::fs::read_to_string(dir.join("hosts.yml")).ok()?;
    login_from_hosts(&text)
}

/// `hosts.yml` is a map of hosts, each with a `user:`; a line scan is enough
/// and never fails on fields gh adds later.
pub fn login_from_hosts(text: &str) -> Option<String> {
    let mut host = String::new();
    let mut found: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with([' ', '\t', '#']) && line.trim_end().ends_with(':') {
            host = line.trim_end().trim_end_matches(':').trim_matches('"').to_string();
        } else if let Some(v) = line.trim_start().strip_prefix("user:") {
            let v = v.trim().trim_matches(['"', '\'']).to_string();
            if crate::approval::is_valid_login(&v) && line.starts_with("    ") {
                found.push((host.clone(), v));
            }
        }
    }
    found.iter().find(|(h, _)| h == "github.com").or(found.first()).map(|(_, u)| u.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hosts_yml_user_of_github_com() {
        let text = "ghe.example.com:\n    user: other\ngithub.com:\n    git_protocol: https\n    users:\n        alice:\n    user: alice\n";
        assert_eq!(login_from_hosts(text).as_deref(), Some("alice"));
        assert_eq!(login_from_hosts("x: 1\n"), None);
    }

    #[test]
    fn ids_are_unique_and_valid() {
        let d = Draft { requester: "Alice".into(), role: "db readonly".into(), ..Draft::default() };
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(d.id(now, &|_| false).as_deref(), Some("2026-12-01-alice-db-readonly"));
        assert_eq!(d.id(now, &|id| id == "2026-12-01-alice-db-readonly").as_deref(), Some("2026-12-01-alice-db-readonly-2"));
    }

    #[test]
    fn yaml_quotes_what_users_type() {
        let d = Draft {
            requester: "alice".into(),
            role: "r".into(),
            resources: vec!["a".into()],
            duration: "2h".into(),
            reason: "x: \"y\" # z".into(),
            ..Draft::default()
        };
        assert!(d.to_yaml().contains("reason: \"x: \\\"y\\\" # z\"\n"), "{}", d.to_yaml());
    }
}
