//! `ratewire replay`: the live probes' counting, done on a pcap or pcapng capture.
//!
//! Frames are decoded to TCP segments ([`decode`]), each direction of a connection is
//! put back in sequence order ([`reassembly`]) and framed into HTTP/1.x messages
//! ([`message`]) with the kernel's own head parser, and responses are paired with their
//! requests ([`flow`]). The result is journal [`Record`]s (source `replay`) and a
//! per-upstream [`Summary`]. Bodies, header values other than the few rate-limit facts,
//! and query strings are never kept.

pub mod capture;
pub mod decode;
pub mod flow;
pub mod message;
pub mod reassembly;
pub mod route;
pub mod summary;
pub mod synth;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ratewire_journal::Record;

pub use capture::{CaptureFault, CaptureReader, Frame};
pub use flow::FlowStats;
pub use summary::Summary;

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// A request still unanswered this long after it was sent ends as `no_response` /
    /// `timeout` (so do requests still waiting when the capture ends). The live probes'
    /// `--response-timeout`, with the same default.
    pub response_timeout: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            response_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a capture could not be replayed, or not to its end.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    #[error("{}: {reason}", path.display())]
    NotACapture { path: PathBuf, reason: String },
    #[error("{}: packet {packet}: {reason}", path.display())]
    BadPacket {
        path: PathBuf,
        packet: u64,
        reason: String,
    },
}

/// Counts of what was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub packets: u64,
    /// Bytes captured (frame data, not file size).
    pub captured_bytes: u64,
    pub tcp_segments: u64,
    /// Frames that were not TCP over IPv4/IPv6.
    pub not_tcp: u64,
    /// IP fragments (not reassembled).
    pub fragments: u64,
    /// Frames with headers cut short or inconsistent.
    pub malformed: u64,
    /// Frames of a link type replay does not read.
    pub unsupported_link: u64,
    pub first_unix_ns: Option<u64>,
    pub last_unix_ns: Option<u64>,
    pub flows: FlowStats,
}

/// What a replay found. When `capture_error` is set, the capture was cut short or
/// corrupt there, and everything else describes the packets before it.
#[derive(Debug)]
pub struct ReplayReport {
    pub summary: Summary,
    pub stats: ReplayStats,
    pub capture_error: Option<ReplayError>,
}

/// A replay with its records.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// In the order their outcome was decided (close to time order).
    pub records: Vec<Record>,
    pub report: ReplayReport,
}

/// Replay the capture at `path`, keeping the records in memory.
pub fn replay_file(path: &Path, opts: &ReplayOptions) -> Result<ReplayOutcome, ReplayError> {
    let file = File::open(path).map_err(|error| ReplayError::Open {
        path: path.to_owned(),
        error,
    })?;
    let mut records = Vec::new();
    let report = replay_reader(file, path, opts, &mut |record| records.push(record))?;
    Ok(ReplayOutcome { records, report })
}

/// Replay a capture read from `input` (named `path` in errors), handing each record to
/// `sink` as soon as its outcome is known. `Err` only when nothing could be read.
pub fn replay_reader(
    input: impl Read,
    path: &Path,
    opts: &ReplayOptions,
    sink: &mut dyn FnMut(Record),
) -> Result<ReplayReport, ReplayError> {
    let mut reader = CaptureReader::open(input).map_err(|fault| fault_error(path, fault))?;
    let mut stats = ReplayStats::default();
    let mut summary = Summary::default();
    let mut table = flow::FlowTable::new(duration_ns(opts.response_timeout));
    let mut sink = |record: Record| {
        summary.add(&record);
        sink(record);
    };
    let read = reader.for_each_frame(|frame| {
        stats.packets += 1;
        stats.captured_bytes += frame.data.len() as u64;
        stats.first_unix_ns.get_or_insert(frame.unix_ns);
        stats.last_unix_ns = Some(stats.last_unix_ns.unwrap_or(0).max(frame.unix_ns));
        match decode::tcp_segment(frame.link, frame.data, frame.orig_len) {
            Ok(segment) => {
                stats.tcp_segments += 1;
                table.on_segment(&segment, frame.unix_ns, &mut sink);
            }
            Err(decode::Skip::NotTcp) => stats.not_tcp += 1,
            Err(decode::Skip::Fragment) => stats.fragments += 1,
            Err(decode::Skip::Malformed) => stats.malformed += 1,
            Err(decode::Skip::UnsupportedLink) => stats.unsupported_link += 1,
        }
    });
    table.finish(stats.last_unix_ns.unwrap_or(0), &mut sink);
    stats.flows = table.stats.clone();
    Ok(ReplayReport {
        summary,
        stats,
        capture_error: read.err().map(|fault| fault_error(path, fault)),
    })
}

fn fault_error(path: &Path, fault: CaptureFault) -> ReplayError {
    let path = path.to_owned();
    match fault {
        CaptureFault::NotACapture(reason) => ReplayError::NotACapture { path, reason },
        CaptureFault::BadHeader(reason) => ReplayError::NotACapture {
            path,
            reason: format!("capture file header: {reason}"),
        },
        CaptureFault::BadPacket { packet, reason } => ReplayError::BadPacket {
            path,
            packet,
            reason,
        },
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
