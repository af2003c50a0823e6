//! Appending records to a data directory of rotating JSON Lines files.
//!
//! Flush policy: records are buffered in memory and written out (one `write` for most
//! batches) at the end of every [`JournalWriter::write_batch`], so a crash loses at most
//! the batch being written and leaves at worst one torn last line, which the reader
//! reports and skips. Data are `fsync`ed when a file is rotated out and on
//! [`JournalWriter::sync`] / [`JournalWriter::close`], not per batch: the daemon
//! batches ring-buffer events, and a disk sync per batch would cap its rate.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::reader::{journal_files, JournalError};
use crate::record::Record;

/// Where and how much to keep.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub data_dir: PathBuf,
    /// Start a new file once the current one exceeds this many bytes.
    pub max_file_bytes: u64,
    /// Keep at most this many files (the current one included), deleting the oldest.
    pub max_files: Option<usize>,
    /// Delete files whose newest record is older than this, measured against the time of
    /// the record being written (so replaying an old capture does not erase itself).
    pub max_age: Option<Duration>,
}

impl WriterConfig {
    /// 64 MiB files, no retention limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> WriterConfig {
        WriterConfig {
            data_dir: data_dir.into(),
            max_file_bytes: 64 << 20,
            max_files: None,
            max_age: None,
        }
    }
}

/// Append-only writer of a journal data directory. Never rewrites a file: each writer
/// starts a new file, so a line torn by a previous crash stays where it was.
pub struct JournalWriter {
    config: WriterConfig,
    current: Option<CurrentFile>,
    /// One serialized record, reused so a write allocates nothing in steady state.
    line: Vec<u8>,
}

struct CurrentFile {
    path: PathBuf,
    start_ns: u64,
    out: BufWriter<File>,
    bytes: u64,
}

impl JournalWriter {
    /// Create the data directory if needed. No file is created before the first record.
    pub fn open(config: WriterConfig) -> Result<JournalWriter, JournalError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| JournalError::io(&config.data_dir, e))?;
        Ok(JournalWriter {
            config,
            current: None,
            line: Vec::with_capacity(512),
        })
    }

    /// The file records are being appended to, once there is one.
    pub fn current_file(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }

    /// Append `records` and flush them to the OS (see the module doc's flush policy).
    pub fn write_batch(&mut self, records: &[Record]) -> Result<(), JournalError> {
        for record in records {
            self.append(record)?;
        }
        self.flush()
    }

    /// Flush buffered records to the OS.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if let Some(cur) = &mut self.current {
            cur.out
                .flush()
                .map_err(|e| JournalError::io(&cur.path, e))?;
        }
        Ok(())
    }

    /// Flush and `fsync` the current file.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.flush()?;
        if let Some(cur) = &self.current {
            cur.out
                .get_ref()
                .sync_data()
                .map_err(|e| JournalError::io(&cur.path, e))?;
        }
        Ok(())
    }

    /// Flush and `fsync`, then close the current file.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.sync()
    }

    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)
            .map_err(|e| JournalError::io(&self.config.data_dir, e.into()))?;
        self.line.push(b'\n');
        let rotate = match &self.current {
            None => true,
            Some(cur) => cur.bytes >= self.config.max_file_bytes,
        };
        if rotate {
            self.start_file(record.unix_ns)?;
        }
        let cur = self
            .current
            .as_mut()
            .expect("start_file sets the current file");
        cur.out
            .write_all(&self.line)
            .map_err(|e| JournalError::io(&cur.path, e))?;
        cur.bytes += self.line.len() as u64;
        Ok(())
    }

    /// Close the current file (synced) and start one named after `first_ns`, then prune.
    fn start_file(&mut self, first_ns: u64) -> Result<(), JournalError> {
        if self.current.is_some() {
            self.sync()?;
        }
        // A name is never reused: bump past an existing file (a restart in the same
        // nanosecond, or a replay of the same capture into the same directory).
        let mut start_ns = first_ns;
        if let Some(cur) = &self.current {
            start_ns = start_ns.max(cur.start_ns.saturating_add(1));
        }
        let (path, file) = loop {
            let path = self.config.data_dir.join(crate::file_name(start_ns));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && start_ns < u64::MAX => {
                    start_ns += 1;
                }
                Err(e) => return Err(JournalError::io(&path, e)),
            }
        };
        self.current = Some(CurrentFile {
            path,
            start_ns,
            out: BufWriter::with_capacity(1 << 16, file),
            bytes: 0,
        });
        self.prune(first_ns)
    }

    /// Apply `max_files` and `max_age`, never deleting the current file.
    fn prune(&mut self, now_ns: u64) -> Result<(), JournalError> {
        if self.config.max_files.is_none() && self.config.max_age.is_none() {
            return Ok(());
        }
        let current = self.current_file().map(Path::to_owned);
        let files = journal_files(&self.config.data_dir)?;
        let starts: Vec<u64> = files.iter().map(|f| file_start(f).unwrap_or(0)).collect();
        let mut keep_from = 0;
        if let Some(max_files) = self.config.max_files {
            keep_from = files.len().saturating_sub(max_files.max(1));
        }
        if let Some(max_age) = self.config.max_age {
            let cutoff = now_ns.saturating_sub(max_age.as_nanos().min(u64::MAX as u128) as u64);
            // A file's records end where the next file starts: it is wholly older than
            // the cutoff when the next file starts before it.
            let expired = starts.windows(2).take_while(|w| w[1] <= cutoff).count();
            keep_from = keep_from.max(expired);
        }
        for path in &files[..keep_from] {
            if Some(path) == current.as_ref() {
                continue;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(JournalError::io(path, e)),
            }
        }
        Ok(())
    }
}

fn file_start(path: &Path) -> Option<u64> {
    crate::file_start_ns(path.file_name()?.to_str()?)
}

/// Write `records` as JSON Lines to any writer (one file, stdout, a pipe): the format of
/// a journal file without rotation.
pub fn write_jsonl<'a>(
    out: &mut impl Write,
    records: impl IntoIterator<Item = &'a Record>,
) -> std::io::Result<()> {
    for record in records {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::read_path;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("ratewire-writer-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn records(n: u64, start_ns: u64, step_ns: u64) -> Vec<Record> {
        (0..n)
            .map(|i| Record::response(start_ns + i * step_ns, "10.0.0.2:8000".into(), 200, "xdp"))
            .collect()
    }

    #[test]
    fn rotates_by_size_and_reads_back_in_order() {
        let dir = TempDir::new("rotate");
        let mut config = WriterConfig::new(&dir.0);
        config.max_file_bytes = 1000;
        let mut w = JournalWriter::open(config).unwrap();
        let all = records(50, 1_000_000, 1_000);
        for batch in all.chunks(7) {
            w.write_batch(batch).unwrap();
        }
        w.close().unwrap();
        let names = dir.names();
        assert!(names.len() > 3, "{names:?}");
        assert_eq!(names[0], crate::file_name(1_000_000));
        for name in &names {
            let len = std::fs::metadata(dir.0.join(name)).unwrap().len();
            assert!(len < 1000 + 200, "{name} has {len} bytes");
        }
        assert_eq!(read_path(&dir.0).unwrap().records, all);
    }

    #[test]
    fn never_reuses_a_file_name() {
        let dir = TempDir::new("reuse");
        for _ in 0..3 {
            let mut w = JournalWriter::open(WriterConfig::new(&dir.0)).unwrap();
            w.write_batch(&records(2, 5, 1)).unwrap();
        }
        assert_eq!(
            dir.names(),
            vec![
                crate::file_name(5),
                crate::file_name(6),
                crate::file_name(7)
            ]
        );
        assert_eq!(read_path(&dir.0).unwrap().records.len(), 6);
    }

    #[test]
    fn retention_by_count_and_age() {
        let dir = TempDir::new("retention");
        let mut config = WriterConfig::new(&dir.0);
        config.max_file_bytes = 1; // one record per file
        config.max_files = Some(3);
        let mut w = JournalWriter::open(config.clone()).unwrap();
        w.write_batch(&records(5, 1_000, 1_000)).unwrap();
        assert_eq!(
            dir.names(),
            [3_000, 4_000, 5_000].map(crate::file_name).to_vec()
        );

        config.max_files = None;
        config.max_age = Some(Duration::from_nanos(2_500));
        let mut w = JournalWriter::open(config).unwrap();
        w.write_batch(&records(1, 7_000, 1)).unwrap();
        // Cutoff 4_500: 3_000's records end at 4_000 (gone); 4_000's run to 5_000 (kept).
        assert_eq!(
            dir.names(),
            [4_000, 5_000, 7_000].map(crate::file_name).to_vec()
        );
    }

    #[test]
    fn write_jsonl_matches_the_file_format() {
        let all = records(2, 1, 1);
        let mut out = Vec::new();
        write_jsonl(&mut out, &all).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with("}\n"));
    }
}
