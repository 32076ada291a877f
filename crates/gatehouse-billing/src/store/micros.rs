//! Times as the store keeps them: Unix microseconds in a `BIGINT`, converted at its edges.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Current time as Unix microseconds.
pub(crate) fn now_micros() -> i64 {
    to_micros(SystemTime::now())
}

pub(crate) fn to_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn from_micros(us: i64) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

/// Unix microseconds as RFC 3339 UTC with microsecond precision (`2026-01-15T09:30:00.000000Z`).
pub fn rfc3339_micros(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_and_render() {
        for us in [0, 1, -1, 1_767_225_600_000_000] {
            assert_eq!(to_micros(from_micros(us)), us);
        }
        assert_eq!(
            rfc3339_micros(1_767_225_600_000_000),
            "2026-01-01T00:00:00.000000Z"
        );
    }
}
