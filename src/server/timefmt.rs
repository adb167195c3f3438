//! Unix microseconds to an RFC 3339 UTC string, for `/admin/wal` timestamps.
//!
//! One conversion is all the server needs, so it is written out here (Howard Hinnant's
//! `civil_from_days`) rather than pulling in a date crate.

/// Format `micros` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn rfc3339_from_micros(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_from_micros(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29, a leap day in a century leap year.
        assert_eq!(
            rfc3339_from_micros(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        // `date -u -d @1700000000`: Tue Nov 14 22:13:20 UTC 2023.
        assert_eq!(
            rfc3339_from_micros(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        // 2100 is not a leap year: the day after Feb 28 is Mar 1.
        assert_eq!(
            rfc3339_from_micros(4_107_542_400_000_000),
            "2100-03-01T00:00:00.000000Z"
        );
        assert_eq!(
            rfc3339_from_micros(1_704_067_199_999_999),
            "2023-12-31T23:59:59.999999Z"
        );
    }
}
