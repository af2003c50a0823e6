//! Timestamps as the inputs write them, to Unix nanoseconds, without a date library.
//! Times without a zone (genai-bench's log) are read as UTC; reconciliation estimates
//! the offset to the wire's clock (see [`crate::reconcile::matching`]).

use crate::model::{NS_PER_MS, NS_PER_SEC};

pub use ratewire_journal::time::{format_rfc3339_nanos, parse_rfc3339};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn to_ns(days: i64, hour: u32, min: u32, sec: u32, nanos: u64, offset_secs: i64) -> Option<u64> {
    let secs =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec) - offset_secs;
    u64::try_from(secs)
        .ok()?
        .checked_mul(NS_PER_SEC)?
        .checked_add(nanos)
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// `YYYY-MM-DD HH:MM:SS` with an optional fraction (`.123`, or Python's unexpanded
/// `.%f` as genai-bench writes it), no zone: read as UTC.
pub fn parse_naive_datetime(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (hour, min, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut nanos = 0u64;
    if b.len() > 20 && matches!(b[19], b'.' | b',') {
        let frac: Vec<u8> = b[20..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .copied()
            .collect();
        for (i, c) in frac.iter().take(9).enumerate() {
            nanos += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
    }
    to_ns(
        days_from_civil(i64::from(year), month, day),
        hour,
        min,
        sec,
        nanos,
        0,
    )
}

/// nginx `$time_local`: `10/Oct/2000:13:55:36 -0700` (without the brackets).
pub fn parse_nginx_time(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let day = num(&b[0..2])?;
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == &b[3..6])? as u32 + 1;
    let year = num(&b[7..11])?;
    let (hour, min, sec) = (num(&b[12..14])?, num(&b[15..17])?, num(&b[18..20])?);
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset = sign * (i64::from(num(&b[22..24])?) * 3600 + i64::from(num(&b[24..26])?) * 60);
    to_ns(
        days_from_civil(i64::from(year), month, day),
        hour,
        min,
        sec,
        0,
        offset,
    )
}

/// A number that is a Unix time in s, ms, µs or ns: the unit is told by its magnitude
/// (anything after 1973 in seconds is below 1e11; in ms below 1e14; ...).
pub fn unix_ns_from_number(value: f64) -> Option<u64> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let ns = if value >= 1e17 {
        value
    } else if value >= 1e14 {
        value * 1e3
    } else if value >= 1e11 {
        value * 1e6
    } else {
        value * 1e9
    };
    (ns < 1.8e19).then_some(ns as u64)
}

/// A time field of a JSON report: a number (see [`unix_ns_from_number`]) or an
/// RFC 3339 / naive date-time string.
pub fn unix_ns_from_json(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|u| unix_ns_from_number(u as f64).map(|_| u))
            .filter(|&u| u >= 100_000_000_000_000_000)
            .or_else(|| n.as_f64().and_then(unix_ns_from_number)),
        serde_json::Value::String(s) => parse_rfc3339(s)
            .or_else(|| parse_naive_datetime(s))
            .or_else(|| s.parse::<f64>().ok().and_then(unix_ns_from_number)),
        _ => None,
    }
}

/// `HH:MM:SS.mmm` UTC of a Unix ns time, for compact tables.
pub fn clock_utc(unix_ns: u64) -> String {
    let secs = unix_ns / NS_PER_SEC;
    let ms = unix_ns % NS_PER_SEC / NS_PER_MS;
    let s = secs % 86_400;
    format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, s % 3600 / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 23), 20_780);
    }

    #[test]
    fn naive_and_genai_bench_times() {
        let t = parse_naive_datetime("2026-11-23 11:46:26").unwrap();
        assert_eq!(format_rfc3339_nanos(t), "2026-11-23T11:46:26.000000000Z");
        assert_eq!(parse_naive_datetime("2026-11-23 11:46:26.%f"), Some(t));
        assert_eq!(
            parse_naive_datetime("2026-11-23 11:46:26,250"),
            Some(t + 250_000_000)
        );
        assert_eq!(parse_naive_datetime("2026-13-23 11:46:26"), None);
        assert_eq!(parse_naive_datetime("garbage"), None);
    }

    #[test]
    fn nginx_time_with_offset() {
        let t = parse_nginx_time("10/Oct/2000:13:55:36 -0700").unwrap();
        assert_eq!(format_rfc3339_nanos(t), "2000-10-10T20:55:36.000000000Z");
        assert_eq!(parse_nginx_time("10/Foo/2000:13:55:36 -0700"), None);
    }

    #[test]
    fn numbers_in_any_unit() {
        let ns = 1_795_434_604_070_339_000u64;
        let frac = unix_ns_from_number(1_795_434_604.070339).unwrap();
        assert!(frac.abs_diff(ns) < 1_000, "{frac}");
        let from_s = unix_ns_from_number(1_795_434_604.0).unwrap();
        let from_ms = unix_ns_from_number(1_795_434_604_000.0).unwrap();
        assert_eq!(from_s, from_ms);
        assert_eq!(unix_ns_from_json(&serde_json::json!(ns)), Some(ns));
        assert_eq!(
            unix_ns_from_json(&serde_json::json!("2026-11-23T11:46:26Z")),
            parse_rfc3339("2026-11-23T11:46:26Z")
        );
    }
}
