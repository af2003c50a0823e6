//! One module per input format, each behind [`ReportReader`]: a reader says how sure it
//! is that it can read an input ([`ReportReader::sniff`]) and turns it into a
//! [`Report`]. Adding a format is adding a module and a line in [`READERS`].
//!
//! Readers never fail on a bad line: they skip it, record where and what was expected
//! ([`crate::model::Problems`]) and go on. They fail only when the input as a whole is
//! unusable (unreadable, not JSON at all, no recognisable content).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::AuditError;
use crate::model::Report;

pub use crate::format::Format;

pub mod aiperf;
pub mod envoy;
pub mod genai_bench;
pub mod guidellm;
pub mod jsonl;
pub mod litellm;
pub mod locust;
pub mod nginx;
pub mod prometheus;
pub mod vllm;

/// Options some readers need (the generic JSON Lines reader's field names).
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Dotted path of the time field (`ts`, `metadata.request_start_ns`).
    pub field_time: Option<String>,
    /// Dotted path of the status field (`status`, `error.code`).
    pub field_status: Option<String>,
}

/// What a reader may look at to decide whether an input is its format.
pub struct Probe<'a> {
    pub path: &'a Path,
    pub is_dir: bool,
    /// The first few KiB of a file (lossy UTF-8); empty for directories.
    pub head: &'a str,
}

impl Probe<'_> {
    pub fn file_name(&self) -> &str {
        self.path.file_name().and_then(|n| n.to_str()).unwrap_or("")
    }
}

pub trait ReportReader: Sync {
    fn format(&self) -> Format;
    /// How sure the reader is that it reads this input: 0 = not its format; the most
    /// sure reader wins, ties go to the earlier reader in [`READERS`].
    fn sniff(&self, probe: &Probe<'_>) -> u8;
    fn read(&self, path: &Path, options: &ReadOptions) -> Result<Report, AuditError>;
}

/// Every reader, most specific first.
pub static READERS: &[&dyn ReportReader] = &[
    &genai_bench::GenaiBenchReader,
    &locust::LocustCsvReader,
    &locust::LocustJsonReader,
    &vllm::VllmReader,
    &aiperf::AiperfReader,
    &guidellm::GuidellmReader,
    &envoy::EnvoyReader,
    &nginx::NginxReader,
    &litellm::LitellmReader,
    &prometheus::PrometheusReader,
    &jsonl::JsonlReader,
];

pub fn reader_for(format: Format) -> &'static dyn ReportReader {
    *READERS
        .iter()
        .find(|r| r.format() == format)
        .expect("every Format has a reader")
}

/// The format of `path`, by asking every reader.
pub fn detect(path: &Path) -> Result<Format, AuditError> {
    // Locust's `--csv PREFIX` names no file of its own.
    if !path.exists() && locust::csv_prefix(path).is_some() {
        return Ok(Format::LocustCsv);
    }
    let meta = std::fs::metadata(path).map_err(|e| AuditError::io(path, e))?;
    let head = if meta.is_dir() {
        String::new()
    } else {
        let mut buf = vec![0u8; 8192];
        let mut file = File::open(path).map_err(|e| AuditError::io(path, e))?;
        let n = read_up_to(&mut file, &mut buf).map_err(|e| AuditError::io(path, e))?;
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let probe = Probe {
        path,
        is_dir: meta.is_dir(),
        head: &head,
    };
    let mut best: Option<(u8, Format)> = None;
    for reader in READERS {
        let score = reader.sniff(&probe);
        if score > 0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, reader.format()));
        }
    }
    best.map(|(_, f)| f)
        .ok_or_else(|| AuditError::UnknownFormat {
            path: path.to_owned(),
            hint: if meta.is_dir() {
                "a directory without experiment_metadata.json or Locust CSV files".into()
            } else {
                "not a known benchmark report, access log or metrics text".into()
            },
        })
}

/// Read `path` as `forced`, or as the detected format.
pub fn read(
    path: &Path,
    forced: Option<Format>,
    options: &ReadOptions,
) -> Result<Report, AuditError> {
    let format = match forced {
        Some(f) => f,
        None => detect(path)?,
    };
    reader_for(format).read(path, options)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

// ---- helpers shared by the readers ----

pub(crate) fn read_to_string(path: &Path) -> Result<String, AuditError> {
    let bytes = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Parse a whole-file JSON document; the error names line and column.
pub(crate) fn parse_json(path: &Path, text: &str) -> Result<serde_json::Value, AuditError> {
    serde_json::from_str(text).map_err(|e| {
        AuditError::invalid(
            path,
            Some(e.line() as u64),
            format!("expected a JSON document: {e}"),
        )
    })
}

/// Each line of a text file with its 1-based number; invalid UTF-8 is replaced, not fatal.
pub(crate) fn for_each_line(
    path: &Path,
    mut each: impl FnMut(u64, &str),
) -> Result<(), AuditError> {
    let file = File::open(path).map_err(|e| AuditError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| AuditError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        match std::str::from_utf8(&buf) {
            Ok(line) => each(line_no, line),
            Err(_) => each(line_no, &String::from_utf8_lossy(&buf)),
        }
    }
}

/// `value` at a dotted path (`a.b.0.c`).
pub(crate) fn json_path<'v>(
    value: &'v serde_json::Value,
    path: &str,
) -> Option<&'v serde_json::Value> {
    path.split('.').try_fold(value, |v, key| match v {
        serde_json::Value::Object(map) => map.get(key),
        serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A status-like JSON value: 429, "429", 429.0.
pub(crate) fn json_status(value: &serde_json::Value) -> Option<u16> {
    let code = match value {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64))?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    u16::try_from(code).ok().filter(|c| (100..=599).contains(c))
}

/// `http://127.0.0.1:9120/v1` → `127.0.0.1:9120` when the host is an IP literal or
/// `localhost` (the wire knows addresses, not names); default ports from the scheme.
pub fn upstream_of_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let (h, p) = stripped.split_once(']')?;
        (format!("[{h}]"), p.strip_prefix(':').map(str::to_owned))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.to_owned())),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) if p.parse::<u16>().is_ok() => p,
        Some(_) => return None,
        None => match scheme {
            "https" => "443".into(),
            "http" => "80".into(),
            _ => return None,
        },
    };
    let host = if host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    let is_ip = host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok();
    is_ip.then(|| format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_from_urls() {
        assert_eq!(
            upstream_of_url("http://127.0.0.1:9120/v1").as_deref(),
            Some("127.0.0.1:9120")
        );
        assert_eq!(
            upstream_of_url("http://localhost:8000").as_deref(),
            Some("127.0.0.1:8000")
        );
        assert_eq!(
            upstream_of_url("https://10.0.0.2/v1").as_deref(),
            Some("10.0.0.2:443")
        );
        assert_eq!(
            upstream_of_url("http://[::1]:9000/x").as_deref(),
            Some("[::1]:9000")
        );
        assert_eq!(upstream_of_url("https://api.openai.com/v1"), None);
        assert_eq!(upstream_of_url("not a url"), None);
    }

    #[test]
    fn json_paths_and_statuses() {
        let v = serde_json::json!({"a": {"b": [1, {"c": "429"}]}});
        assert_eq!(json_path(&v, "a.b.1.c").and_then(json_status), Some(429));
        assert_eq!(json_path(&v, "a.x"), None);
        assert_eq!(json_status(&serde_json::json!(200.0)), Some(200));
        assert_eq!(json_status(&serde_json::json!(-1)), None);
    }
}
