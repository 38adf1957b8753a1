//! One request as one set of policies judges it: validation (skipped for a
//! shrink or unchanged content, as in `check`), then risk and approvals.
//! `simulate` and the policy diff compare two of these.

use serde::Serialize;

use super::request::{Change, describe_rules, evaluate};
use crate::diag::Diagnostics;
use crate::history::History;
use crate::model::policy::{ApprovalRule, Policy};
use crate::model::request::Request;
use crate::validate::{RequestContext, validate_request};

/// One request as one set of policies judges it: what reviewers compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub valid: bool,
    /// The errors that make it invalid, as `GGnnn: message`.
    pub errors: Vec<String>,
    pub score: Option<i64>,
    pub tier: Option<String>,
    pub approvals: Vec<ApprovalRule>,
}

impl Judgement {
    /// What differs from `other`, by name: `tier`, `approvals`, `validity`.
    pub fn differences(&self, other: &Judgement) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.tier != other.tier {
            out.push("tier");
        }
        if self.approvals != other.approvals {
            out.push("approvals");
        }
        if self.valid != other.valid {
            out.push("validity");
        }
        out
    }

    /// `medium (score 42), needs 1 from managers` — for text output.
    pub fn describe(&self) -> String {
        let tier = match (&self.tier, self.score) {
            (Some(t), Some(s)) => format!("{t} (score {s})"),
            _ => "unscored".to_string(),
        };
        let valid = if self.valid { String::new() } else { format!(", INVALID: {}", self.errors.join("; ")) };
        format!("{tier}, needs {}{valid}", describe_rules(&self.approvals))
    }
}

/// Judges `req` under `policy` exactly as `check` would: validation (skipped
/// for a shrink, as in `check`), then risk and approvals.
pub fn judge(req: &Request, change: Change, policy: &Policy, history: &History, ctx: &RequestContext) -> Judgement {
    let mut d = Diagnostics::default();
    if change.needs_validation() {
        validate_request(req, policy, ctx, &mut d);
    }
    let outcome = evaluate(req.clone(), change, !d.has_errors(), policy, history, ctx.default_start, &mut d);
    let errors: Vec<String> = d.iter().filter(|x| x.is_error()).map(|x| format!("{}: {}", x.code, x.message)).collect();
    Judgement {
        valid: errors.is_empty(),
        errors,
        score: outcome.risk.as_ref().map(|r| r.score),
        tier: outcome.risk.map(|r| r.tier),
        approvals: outcome.approvals.required,
    }
}
