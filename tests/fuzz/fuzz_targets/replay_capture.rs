//! Arbitrary bytes as a capture file: replay must never panic, whatever it reads.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ratewire_replay::{replay_reader, ReplayOptions};

fuzz_target!(|data: &[u8]| {
    let mut records = 0u64;
    let report = replay_reader(
        Cursor::new(data),
        Path::new("fuzz.pcap"),
        &ReplayOptions::default(),
        &mut |_| records += 1,
    );
    if let Ok(report) = report {
        let f = &report.stats.flows;
        // Every record is a response or a request's no-response, each counted once.
        assert_eq!(records, f.responses + f.no_responses);
        assert!(f.responses + f.no_responses <= f.requests);
    }
});
