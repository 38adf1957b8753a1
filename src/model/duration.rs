//! Humane durations: `90m`, `2h`, `1d`, `1h30m`, `45s`.
//!
//! Grammar: one or more `<digits><unit>` parts with units `s`, `m`, `h`, `d`,
//! `w`, each unit at most once and in descending order. Kept tiny on purpose:
//! access windows are minutes to days, and an ambiguous duration in an access
//! request is a bug.

use std::fmt;

use chrono::TimeDelta;
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    secs: i64,
}

impl Duration {
    pub fn from_secs(secs: i64) -> Self {
        Duration { secs }
    }
    pub fn secs(self) -> i64 {
        self.secs
    }
    pub fn delta(self) -> TimeDelta {
        TimeDelta::seconds(self.secs)
    }
    /// Hours, counting every started hour (risk: `per_hour`).
    pub fn started_hours(self) -> i64 {
        (self.secs + 3599).div_euclid(3600)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is not a duration; write it like `90m`, `2h`, `1d` or `1h30m`")]
    Syntax(String),
    #[error("duration `{0}` is too large")]
    Overflow(String),
}

const UNITS: [(char, i64); 5] = [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

impl std::str::FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad = || DurationError::Syntax(s.to_string());
        if t.is_empty() {
            return Err(bad());
        }
        let mut total: i64 = 0;
        let mut rest = t;
        let mut last_unit = usize::MAX;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(if digits > 9 { DurationError::Overflow(s.to_string()) } else { bad() });
            }
            let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit = rest.chars().next().ok_or_else(bad)?;
            let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
            if last_unit != usize::MAX && idx <= last_unit {
                return Err(bad());
            }
            last_unit = idx;
            total = n.checked_mul(UNITS[idx].1).and_then(|v| total.checked_add(v)).ok_or_else(|| DurationError::Overflow(s.to_string()))?;
            rest = &rest[unit.len_utf8()..];
        }
        Ok(Duration { secs: total })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs == 0 {
            return f.write_str("0m");
        }
        let mut rest = self.secs;
        for (unit, size) in UNITS.iter().skip(1) {
            if rest >= *size {
                write!(f, "{}{}", rest / size, unit)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let p = |s: &str| s.parse::<Duration>().map(|d| d.secs());
        assert_eq!(p("90m"), Ok(5400));
        assert_eq!(p("2h"), Ok(7200));
        assert_eq!(p("1d"), Ok(86400));
        assert_eq!(p("1h30m"), Ok(5400));
        assert_eq!(p("0m"), Ok(0));
        assert_eq!(p("1w"), Ok(604_800));
        for bad in ["", "2", "h", "2x", "30m1h", "1h1h", "-1h", "1.5h", "2 h", "9999999999h"] {
            assert!(p(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn displays_compactly_and_counts_started_hours() {
        assert_eq!("1h30m".parse::<Duration>().unwrap().to_string(), "1h30m");
        assert_eq!("1d".parse::<Duration>().unwrap().to_string(), "1d");
        assert_eq!("26h".parse::<Duration>().unwrap().to_string(), "1d2h");
        assert_eq!(Duration::from_secs(3 * 3600).started_hours(), 3);
        assert_eq!(Duration::from_secs(3 * 3600 + 1).started_hours(), 4);
        assert_eq!(Duration::from_secs(60).started_hours(), 1);
    }
}
