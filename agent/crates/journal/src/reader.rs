//! Reading journals back: one file or a whole data directory, in time order.
//!
//! A crash (`kill -9`, power loss) can leave the last line of a file cut short; such a
//! line, or any other line that is not a whole record, is reported as a [`TornLine`] and
//! skipped, never fatal. A record of a schema version this build does not know is an
//! error: silently skipping it would make counts wrong.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::record::{Kind, Record, SCHEMA_VERSION};

/// Errors reading or writing a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The path is the message; the I/O error is the `source()` (chains print both once).
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    #[error(
        "{}:{line}: record has schema version {v}; this build reads version {SCHEMA_VERSION} (upgrade ratewire)",
        file.display()
    )]
    UnknownVersion { file: PathBuf, line: u64, v: u64 },
    #[error("{}: no journal files (journal-<unix_ns>.jsonl) in this directory", dir.display())]
    NoJournalFiles { dir: PathBuf },
}

impl JournalError {
    pub(crate) fn io(path: &Path, error: io::Error) -> JournalError {
        JournalError::Io {
            path: path.to_owned(),
            error,
        }
    }
}

/// A line that is not a whole record: skipped, and reported so nobody mistakes the
/// journal for complete there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornLine {
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for TornLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.file.file_name().unwrap_or(self.file.as_os_str());
        write!(
            f,
            "{}:{}: torn line ({})",
            name.to_string_lossy(),
            self.line,
            self.reason
        )
    }
}

/// Everything read from a journal file or data directory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalRead {
    /// Records in file order (files in time order).
    pub records: Vec<Record>,
    /// Lines that were not whole records, in the same order.
    pub torn: Vec<TornLine>,
    /// Sum of `lost` over all gap records: events that are missing from `records`.
    pub gaps_lost: u64,
}

/// Read a journal file, or every journal file of a data directory in time order.
pub fn read_path(path: &Path) -> Result<JournalRead, JournalError> {
    let mut read = JournalRead::default();
    for entry in JournalReader::open(path)? {
        match entry? {
            Entry::Record(record) => {
                if record.kind == Kind::Gap {
                    read.gaps_lost += record.lost.unwrap_or(0);
                }
                read.records.push(record);
            }
            Entry::Torn(torn) => read.torn.push(torn),
        }
    }
    Ok(read)
}

/// The journal files of a data directory, oldest first.
pub fn journal_files(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| JournalError::io(dir, e))? {
        let entry = entry.map_err(|e| JournalError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(start) = name.to_str().and_then(crate::file_start_ns) {
            files.push((start, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// One line of a journal, as the streaming [`JournalReader`] yields it.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Record(Record),
    Torn(TornLine),
}

/// Streams the lines of a journal file or data directory without holding them all.
pub struct JournalReader {
    pending_files: VecDeque<PathBuf>,
    current: Option<OpenFile>,
    line_buf: Vec<u8>,
}

struct OpenFile {
    path: PathBuf,
    reader: BufReader<File>,
    line_no: u64,
}

impl JournalReader {
    /// Open `path`: a journal file, or a data directory (all its journal files in order).
    pub fn open(path: &Path) -> Result<JournalReader, JournalError> {
        let meta = std::fs::metadata(path).map_err(|e| JournalError::io(path, e))?;
        let files = if meta.is_dir() {
            let files = journal_files(path)?;
            if files.is_empty() {
                return Err(JournalError::NoJournalFiles {
                    dir: path.to_owned(),
                });
            }
            files
        } else {
            vec![path.to_owned()]
        };
        Ok(JournalReader {
            pending_files: files.into(),
            current: None,
            line_buf: Vec::with_capacity(512),
        })
    }

    /// Next entry of the current file, `None` at its end.
    fn next_in_current(&mut self) -> Option<Result<Entry, JournalError>> {
        let file = self.current.as_mut()?;
        loop {
            self.line_buf.clear();
            match file.reader.read_until(b'\n', &mut self.line_buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(JournalError::io(&file.path, e))),
            }
            file.line_no += 1;
            let complete = self.line_buf.last() == Some(&b'\n');
            let line = self.line_buf.trim_ascii();
            if line.is_empty() {
                continue;
            }
            return Some(parse_line(line, complete, &file.path, file.line_no));
        }
    }
}

impl Iterator for JournalReader {
    type Item = Result<Entry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.next_in_current() {
                return Some(entry);
            }
            let path = self.pending_files.pop_front()?;
            match File::open(&path) {
                Ok(f) => {
                    self.current = Some(OpenFile {
                        path,
                        reader: BufReader::with_capacity(1 << 16, f),
                        line_no: 0,
                    })
                }
                Err(e) => {
                    self.current = None;
                    return Some(Err(JournalError::io(&path, e)));
                }
            }
        }
    }
}

/// Just the version of a line that did not parse as a record.
#[derive(Deserialize)]
struct VersionProbe {
    v: u64,
}

fn parse_line(
    line: &[u8],
    complete: bool,
    file: &Path,
    line_no: u64,
) -> Result<Entry, JournalError> {
    let error = match serde_json::from_slice::<Record>(line) {
        Ok(record) if u64::from(record.v) == u64::from(SCHEMA_VERSION) => {
            return Ok(Entry::Record(record))
        }
        Ok(record) => {
            return Err(JournalError::UnknownVersion {
                file: file.to_owned(),
                line: line_no,
                v: record.v.into(),
            })
        }
        Err(e) => e,
    };
    if let Ok(probe) = serde_json::from_slice::<VersionProbe>(line) {
        if probe.v != u64::from(SCHEMA_VERSION) {
            return Err(JournalError::UnknownVersion {
                file: file.to_owned(),
                line: line_no,
                v: probe.v,
            });
        }
    }
    let mut reason = error.to_string();
    if !complete {
        reason.push_str("; last line has no line end: cut short by a crash?");
    }
    Ok(Entry::Torn(TornLine {
        file: file.to_owned(),
        line: line_no,
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoResponseReason;
    use std::io::Write;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("ratewire-journal-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn line(r: &Record) -> String {
        serde_json::to_string(r).unwrap() + "\n"
    }

    fn write(path: &Path, text: &str) {
        File::create(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn reads_directory_in_time_order_with_torn_last_line() {
        let dir = TempDir::new("order");
        let a = Record::response(1_000, "10.0.0.2:8000".into(), 200, "xdp");
        let b = Record::response(2_000, "10.0.0.2:8000".into(), 429, "xdp");
        let gap = Record::gap(3_000, 5, "xdp");
        let c = Record::no_response(
            4_000,
            "10.0.0.2:8000".into(),
            NoResponseReason::Reset,
            "xdp",
        );
        // Written out of name order, plus files that are not journal files.
        write(
            &dir.0.join(crate::file_name(3_000)),
            &(line(&gap) + &line(&c)),
        );
        let torn = line(&b);
        write(
            &dir.0.join(crate::file_name(1_000)),
            &(line(&a) + "\n" + &line(&b) + &torn[..torn.len() / 2]),
        );
        write(&dir.0.join("notes.txt"), "not a journal");
        write(&dir.0.join("journal-x.jsonl"), "not a journal either");

        let read = read_path(&dir.0).unwrap();
        assert_eq!(read.records, vec![a, b, gap, c]);
        assert_eq!(read.gaps_lost, 5);
        assert_eq!(read.torn.len(), 1);
        let t = &read.torn[0];
        assert_eq!(t.line, 4, "the blank line counts");
        assert!(t.reason.contains("no line end"), "{}", t.reason);
        assert!(t
            .to_string()
            .starts_with(&format!("{}:4: torn line (", crate::file_name(1_000))));
    }

    #[test]
    fn garbage_lines_are_torn_not_fatal() {
        let dir = TempDir::new("garbage");
        let path = dir.0.join("j.jsonl");
        let ok = Record::gap(1, 1, "xdp");
        let mut bytes = line(&ok).into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\x00garbage\n{\"v\":1,\"kind\":\"response\"}\n[1,2]\n");
        bytes.extend_from_slice(line(&ok).as_bytes());
        std::fs::write(&path, bytes).unwrap();
        let read = read_path(&path).unwrap();
        assert_eq!(read.records.len(), 2);
        let lines: Vec<u64> = read.torn.iter().map(|t| t.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert!(
            read.torn[1].reason.contains("missing field"),
            "{}",
            read.torn[1].reason
        );
    }

    #[test]
    fn unknown_version_names_file_and_line() {
        let dir = TempDir::new("version");
        let path = dir.0.join("j.jsonl");
        let mut future = line(&Record::gap(1, 1, "xdp")).replace("\"v\":1", "\"v\":2");
        future.insert_str(future.len() - 2, ",\"new_field\":true");
        write(&path, &(line(&Record::gap(1, 1, "xdp")) + &future));
        let err = read_path(&path).unwrap_err();
        assert!(matches!(
            err,
            JournalError::UnknownVersion { line: 2, v: 2, .. }
        ));
        assert!(
            err.to_string()
                .starts_with(&format!("{}:2: ", path.display())),
            "{err}"
        );
    }

    #[test]
    fn missing_path_and_empty_directory_are_errors() {
        let dir = TempDir::new("empty");
        let err = read_path(&dir.0).unwrap_err();
        assert!(err.to_string().contains("no journal files"), "{err}");
        let err = read_path(&dir.0.join("absent.jsonl")).unwrap_err();
        assert!(err.to_string().contains("absent.jsonl"), "{err}");
        // The cause is kept as the source, for callers that print the whole chain.
        let source = std::error::Error::source(&err).expect("the I/O error is the source");
        assert!(source.to_string().contains("No such file"), "{source}");
    }
}
