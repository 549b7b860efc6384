//! Wall-clock times as UTC text, without a calendar crate: alert documents carry ISO 8601
//! times and recorded clips are named by when they were asked for.

use std::time::{SystemTime, UNIX_EPOCH};

/// A wall-clock time broken down into its UTC calendar fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl From<SystemTime> for Utc {
    fn from(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, day_secs) = ((secs / 86_400) as i64, (secs % 86_400) as u32);
        // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: day_secs / 3600,
            minute: day_secs / 60 % 60,
            second: day_secs % 60,
            micros: since.subsec_micros(),
        }
    }
}

impl Utc {
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// ISO 8601 with microseconds: `2024-05-01T12:00:00.123456Z`.
    pub fn iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }

    /// ISO 8601 basic format with milliseconds, for file names (no colons):
    /// `20240501T120000.123Z`.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.micros / 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64, us: u64) -> Utc {
        (UNIX_EPOCH + Duration::from_secs(s) + Duration::from_micros(us)).into()
    }

    #[test]
    fn iso_is_utc_with_microseconds() {
        assert_eq!(at(0, 0).iso(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 5).iso(), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            at(1_700_000_000, 123_456).iso(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(at(4_107_542_399, 0).iso(), "2100-02-28T23:59:59.000000Z");
    }

    #[test]
    fn compact_has_no_colons_and_milliseconds() {
        assert_eq!(at(1_700_000_000, 123_456).compact(), "20231114T221320.123Z");
        assert_eq!(at(951_868_799, 999_999).compact(), "20000229T235959.999Z");
    }
}
