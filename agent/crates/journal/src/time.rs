//! RFC 3339 UTC timestamps with nanoseconds, written and read without a date library.
//!
//! The journal's `time` field is always `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (fixed width, so
//! it sorts as text); the parser also accepts other fraction lengths and `±HH:MM` offsets,
//! because people type `--since` values by hand.

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: u64 = 86_400;

/// `unix_ns` as RFC 3339 UTC with nine fraction digits, e.g. `2026-05-01T12:00:00.000000001Z`.
pub fn format_rfc3339_nanos(unix_ns: u64) -> String {
    let secs = unix_ns / NANOS_PER_SEC;
    let nanos = unix_ns % NANOS_PER_SEC;
    let (year, month, day) = civil_from_days((secs / SECS_PER_DAY) as i64);
    let secs_of_day = secs % SECS_PER_DAY;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// Unix nanoseconds of an RFC 3339 timestamp (`2026-05-01T12:00:00Z`,
/// `2026-05-01 12:00:00.5+02:00`, ...). `None` if it is not one or lies before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let (month, day) = (digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, min, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u64;
    if let [b'.', tail @ ..] = rest {
        let len = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        // Digits past nanosecond precision are dropped, not rounded.
        for (i, &c) in tail[..len].iter().enumerate().take(9) {
            nanos += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
        rest = &tail[len..];
    }
    let offset_secs: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i64;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month, day);
    let local = days * SECS_PER_DAY as i64 + (hour * 3600 + min * 60 + sec) as i64;
    let unix_secs = u64::try_from(local - offset_secs).ok()?;
    unix_secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

fn digits(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
    })
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let (m, d) = (month as i64, day as i64);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_utc() {
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339_nanos(784_111_777_000_000_001),
            "1994-11-06T08:49:37.000000001Z"
        );
        assert_eq!(
            format_rfc3339_nanos(1_709_210_096_123_456_789),
            "2024-02-29T12:34:56.123456789Z"
        );
        assert_eq!(
            format_rfc3339_nanos(u64::MAX),
            "2554-07-21T23:34:33.709551615Z"
        );
    }

    #[test]
    fn round_trips_across_calendar_edges() {
        // Leap days, month and year ends, century rules.
        for ns in [
            0,
            951_782_400_000_000_000,   // 2000-02-29
            4_107_456_000_999_999_999, // 2100-02-28T00:00:00.999999999
            4_107_542_399_000_000_000, // 2100-02-28T23:59:59
            1_735_689_599_500_000_000, // 2024-12-31T23:59:59.5
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339_nanos(ns)), Some(ns), "{ns}");
        }
        let mut ns = 0u64;
        while ns < 5_000_000_000_000_000_000 {
            assert_eq!(parse_rfc3339(&format_rfc3339_nanos(ns)), Some(ns));
            ns += 86_399_999_999_937; // not a whole day, so times of day vary too
        }
    }

    #[test]
    fn parses_offsets_and_short_fractions() {
        let utc = parse_rfc3339("2026-05-01T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-05-01T14:00:00+02:00"), Some(utc));
        assert_eq!(parse_rfc3339("2026-05-01 07:30:00-04:30"), Some(utc));
        assert_eq!(
            parse_rfc3339("2026-05-01T12:00:00.5Z"),
            Some(utc + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-05-01T12:00:00.1234567891Z"),
            Some(utc + 123_456_789)
        );
    }

    #[test]
    fn rejects_non_timestamps() {
        for bad in [
            "",
            "1714564800",
            "2026-05-01",
            "2026-05-01T12:00:00",
            "2026-13-01T12:00:00Z",
            "2026-02-29T12:00:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T12:00:00.Z",
            "2026-05-01T12:00:00+0200",
            "1969-12-31T23:59:59Z",
            "2026-05-01T12:00:00Zjunk",
            "２026-05-01T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
