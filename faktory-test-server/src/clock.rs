//! The virtual clock: real time plus an offset that tests can move forward.
//!
//! Every timestamp the server hands out (`created_at`, `enqueued_at`, `failed_at`, `next_at`,
//! INFO's `now`) and every deadline it checks (scheduled `at`, retry `next_at`, reservation
//! expiry, heartbeat age) is read from this clock, so `ServerHandle::advance_clock` lets a test
//! skip minutes of Faktory time in a millisecond. Blocking waits (FETCH's ~2 s) stay in real time:
//! they are about the wire, not about job state.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Nanoseconds since the Unix epoch, in virtual time.
pub(crate) type Nanos = i64;

/// Real time plus a forward-only offset.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_nanos: AtomicI64,
}

impl Clock {
    /// Virtual now, as Unix nanoseconds.
    pub(crate) fn now(&self) -> Nanos {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i64;
        real.saturating_add(self.offset_nanos.load(Ordering::Relaxed))
    }

    /// Moves virtual time forward by `by`.
    pub(crate) fn advance(&self, by: Duration) {
        let nanos = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Seconds expressed in [`Nanos`].
pub(crate) const fn secs(s: i64) -> Nanos {
    s.saturating_mul(1_000_000_000)
}

/// Converts Unix nanoseconds to a chrono UTC time.
pub(crate) fn to_datetime(nanos: Nanos) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// Formats a time the way Go's `time.RFC3339Nano` does (Faktory's `util.Nows()`): UTC, `Z`
/// suffix, fractional seconds with trailing zeros removed (none at all on a whole second).
pub(crate) fn format_rfc3339_nano(nanos: Nanos) -> String {
    let t = to_datetime(nanos);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let frac = t.nanosecond() % 1_000_000_000;
    if frac != 0 {
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Parses an RFC 3339 timestamp (Faktory's `util.ParseTime`) into Unix nanoseconds.
pub(crate) fn parse_rfc3339(text: &str) -> Result<Nanos, String> {
    let t = DateTime::parse_from_rfc3339(text).map_err(|e| e.to_string())?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| "timestamp out of range".to_owned())
}

/// INFO's `server_utc_time`: `15:04:05 UTC`.
pub(crate) fn format_utc_time_of_day(nanos: Nanos) -> String {
    format!("{} UTC", to_datetime(nanos).format("%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_fraction_trimming() {
        assert_eq!(format_rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_nano(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(
            format_rfc3339_nano(1_000_000_123),
            "1970-01-01T00:00:01.000000123Z"
        );
    }

    #[test]
    fn parse_round_trip() {
        let n = parse_rfc3339("2026-01-02T03:04:05.25Z").unwrap();
        assert_eq!(format_rfc3339_nano(n), "2026-01-02T03:04:05.25Z");
        assert!(parse_rfc3339("tomorrow").is_err());
    }

    #[test]
    fn advance_moves_forward() {
        let c = Clock::default();
        let before = c.now();
        c.advance(Duration::from_secs(3600));
        assert!(c.now() - before >= secs(3600));
    }
}
