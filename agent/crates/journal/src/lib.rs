//! The journal: what ratewire saw on the wire, one JSON line per event, in files that
//! `ratewire run` and `ratewire replay` write and `ratewire journal` and `ratewire audit`
//! read. The record schema is [`Record`]; it is versioned by [`SCHEMA_VERSION`].
//!
//! A data directory holds `journal-<unix_ns of its first record>.jsonl` files; their
//! names sort in time order ([`writer`] rotates and prunes them, [`reader`] reads them
//! back, tolerating a line torn by a crash).

pub mod query;
pub mod reader;
pub mod record;
pub mod time;
pub mod writer;

pub use reader::{read_path, JournalError, JournalRead, TornLine};
pub use record::{Kind, NoResponseReason, Record, SCHEMA_VERSION};
pub use time::{format_rfc3339_nanos, parse_rfc3339};
pub use writer::{write_jsonl, JournalWriter, WriterConfig};

/// File name prefix and suffix of journal files in a data directory.
pub const FILE_PREFIX: &str = "journal-";
pub const FILE_SUFFIX: &str = ".jsonl";

/// The `unix_ns` in a journal file name (`journal-<unix_ns>.jsonl`), or `None` if
/// `name` is not a journal file's name.
pub fn file_start_ns(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file name for a journal file whose first record is at `unix_ns`. Zero-padded to
/// 20 digits (`u64::MAX` has 20) so that names sort as text exactly as they do as numbers.
pub fn file_name(unix_ns: u64) -> String {
    format!("{FILE_PREFIX}{unix_ns:020}{FILE_SUFFIX}")
}
