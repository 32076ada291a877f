//! Reading claim values: NumericDate times, scopes, audiences and string claims (shared with
//! the introspection verifier).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::caller::ScopeSet;

/// A JSON NumericDate (RFC 7519 §2): seconds, integer or not. Values past year 9999 are
/// refused so that the conversion to `SystemTime` cannot overflow.
pub(crate) fn numeric_date(v: &Value) -> Option<f64> {
    let n = v.as_f64()?;
    (n.is_finite() && (-1e11..=253_402_300_799.0).contains(&n)).then_some(n)
}

pub(crate) fn system_time_from_secs(secs: f64) -> SystemTime {
    if secs <= 0.0 {
        UNIX_EPOCH
    } else {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    }
}

pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Scopes from `scope` / `scp` (string or array) and the configured extra claims.
pub(crate) fn collect_scopes<'a>(
    claims: &Map<String, Value>,
    names: impl Iterator<Item = &'a str>,
) -> ScopeSet {
    let mut out = ScopeSet::new();
    for name in names {
        let parsed = match claims.get(name) {
            Some(Value::String(s)) => ScopeSet::from_space_separated(s),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .flat_map(|s| {
                    ScopeSet::from_space_separated(s)
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect(),
            _ => continue,
        };
        out = out.union(&parsed);
    }
    out
}

/// How a token's `aud` must relate to the accepted audiences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudiencePolicy {
    /// `aud` names an accepted audience, possibly among others (RFC 7519 §4.1.3; the default:
    /// authorization servers routinely add their own userinfo or API audiences).
    #[default]
    Includes,
    /// Every `aud` is an accepted audience: a token that is also good at another service is
    /// refused, so a token one service received cannot be replayed here and vice versa. Breaks
    /// providers that always add an audience of their own (Auth0 adds its userinfo URL).
    Exact,
}

impl AudiencePolicy {
    /// Whether `auds` (non-empty) passes, `accepted` telling an accepted audience.
    pub(crate) fn admits(self, auds: &[String], accepted: impl Fn(&str) -> bool) -> bool {
        match self {
            Self::Includes => auds.iter().any(|a| accepted(a)),
            Self::Exact => !auds.is_empty() && auds.iter().all(|a| accepted(a)),
        }
    }
}

/// `aud` as a list: a string, or an array of strings. `None` for any other type.
pub(crate) fn audiences(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
}

pub(super) fn str_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}
