//! The shared HTTP head parser on arbitrary bytes: no panic, and what it returns is
//! what it promises (a status code in range, a path without query or separators,
//! header values that fit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratewire_common::http::{
    copy_path, is_interim, parse_http_date, parse_request_start, parse_status_line, scan_head,
    ABSENT,
};

fuzz_target!(|data: &[u8]| {
    if let Some(status) = parse_status_line(data) {
        assert!((100..=999).contains(&status));
        assert!(data.starts_with(b"HTTP/1."));
        let _ = is_interim(status);
    }

    if let Some(start) = parse_request_start(data) {
        assert!(start.target_offset < data.len());
        let mut path = [0u8; 64];
        let n = copy_path(data, start.target_offset, &mut path);
        assert!(n <= path.len());
        assert!(!path[..n]
            .iter()
            .any(|b| matches!(b, b' ' | b'\r' | b'\n' | b'?' | b'#')));
    }
    // copy_path from any offset a caller could pass (inside or just past the head).
    if let Some(&first) = data.first() {
        let mut small = [0u8; 8];
        let n = copy_path(data, usize::from(first), &mut small);
        assert!(n <= small.len());
    }

    let facts = scan_head(data);
    for value in [
        facts.retry_after_secs,
        facts.retry_after_ms,
        facts.remaining_requests,
        facts.remaining_tokens,
        facts.client_retry,
    ] {
        assert!(value <= ABSENT);
    }

    let _ = parse_http_date(data);
    // Dates are exactly 29 bytes: also try every 29-byte window, so the fuzzer need not
    // guess the length.
    for window in data.windows(29).take(64) {
        if let Some(unix) = parse_http_date(window) {
            assert_ne!(unix, ABSENT);
        }
    }
});
