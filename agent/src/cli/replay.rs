//! `ratewire replay FILE`: replay a capture into a journal and print the summary.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ratewire_journal::{write_jsonl, JournalWriter, Record, WriterConfig};

use ratewire_replay::{replay_reader, ReplayOptions, ReplayReport};

/// Count upstream HTTP statuses in a pcap/pcapng capture, as the live probes would.
#[derive(clap::Args, Clone, Debug)]
pub struct ReplayArgs {
    /// Capture file: pcap or pcapng (Ethernet, Linux cooked SLL/SLL2, raw IP).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Append the records to this journal data directory.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub data_dir: Option<PathBuf>,
    /// Write the records to this JSON Lines file (replaced if it exists).
    #[arg(long, value_name = "FILE.jsonl")]
    pub output: Option<PathBuf>,
    /// Requests unanswered this many seconds after they were sent end as no_response
    /// (timeout), as in `ratewire run`; so do requests still waiting when the capture ends.
    #[arg(
        long,
        visible_alias = "response-timeout",
        value_name = "SECS",
        default_value = "60",
        value_parser = parse_seconds
    )]
    pub timeout: Duration,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{text}' is not a positive number of seconds"))
}

/// Records are written in batches of this many (the journal flushes per batch).
const BATCH: usize = 4096;

/// Where records go.
enum Output {
    Discard,
    Journal(JournalWriter),
    File(PathBuf, BufWriter<File>),
}

impl Output {
    fn open(args: &ReplayArgs) -> anyhow::Result<Output> {
        if let Some(dir) = &args.data_dir {
            return Ok(Output::Journal(JournalWriter::open(WriterConfig::new(
                dir,
            ))?));
        }
        if let Some(path) = &args.output {
            let file = File::create(path).with_context(|| format!("{}", path.display()))?;
            return Ok(Output::File(
                path.clone(),
                BufWriter::with_capacity(1 << 16, file),
            ));
        }
        Ok(Output::Discard)
    }

    fn write(&mut self, records: &[Record]) -> anyhow::Result<()> {
        match self {
            Output::Discard => Ok(()),
            Output::Journal(journal) => Ok(journal.write_batch(records)?),
            Output::File(path, out) => {
                write_jsonl(out, records).with_context(|| format!("{}", path.display()))
            }
        }
    }

    fn close(self) -> anyhow::Result<()> {
        match self {
            Output::Discard => Ok(()),
            Output::Journal(journal) => Ok(journal.close()?),
            Output::File(path, out) => {
                let file = out.into_inner().map_err(|e| e.into_error());
                file.and_then(|f| f.sync_data())
                    .with_context(|| format!("{}", path.display()))
            }
        }
    }
}

/// Run `ratewire replay`. Exit code 1 when the capture is cut short or corrupt: the
/// records and summary then cover the packets before the bad one.
pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let mut output = Output::open(args)?;
    let input = File::open(&args.file).with_context(|| format!("{}", args.file.display()))?;
    let opts = ReplayOptions {
        response_timeout: args.timeout,
    };
    let started = Instant::now();
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    let mut write_error: Option<anyhow::Error> = None;
    let report = replay_reader(input, &args.file, &opts, &mut |record| {
        batch.push(record);
        if batch.len() == BATCH {
            if write_error.is_none() {
                write_error = output.write(&batch).err();
            }
            batch.clear();
        }
    })?;
    let elapsed = started.elapsed();
    if let Some(e) = write_error {
        return Err(e.context("writing the journal"));
    }
    output.write(&batch)?;
    output.close()?;

    let stdout = io::stdout();
    print_report(&mut stdout.lock(), &report, &args.file, elapsed).context("writing to stdout")?;
    if let Some(error) = &report.capture_error {
        eprintln!("error: {error}; records and counts above cover the packets before it");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(
    out: &mut dyn Write,
    report: &ReplayReport,
    file: &Path,
    elapsed: Duration,
) -> io::Result<()> {
    let s = &report.stats;
    let f = &s.flows;
    if report.summary.is_empty() {
        writeln!(out, "no HTTP/1.x request/response exchanges found")?;
    } else {
        report.summary.write_table(out)?;
    }
    writeln!(
        out,
        "{}: {} packets ({} TCP) in {:.2} s; {} connections, {} requests, {} responses, {} no_response",
        file.display(),
        s.packets,
        s.tcp_segments,
        elapsed.as_secs_f64(),
        f.connections,
        f.requests,
        f.responses,
        f.no_responses,
    )?;
    let notes = [
        (
            f.interim_responses,
            "1xx interim responses (not final, not counted)",
        ),
        (
            f.unpaired_responses,
            "status lines with no outstanding request on their connection (not counted)",
        ),
        (
            f.unresolved_requests,
            "requests whose response was lost by the capture (not counted)",
        ),
        (
            f.holes,
            "byte ranges missing from the capture (snap length or drops)",
        ),
        (
            f.desyncs,
            "times a stream lost message boundaries and resynchronised on a segment start",
        ),
        (s.fragments, "IP fragments skipped"),
        (s.malformed, "malformed frames skipped"),
        (
            s.unsupported_link,
            "frames of an unsupported link type skipped",
        ),
    ];
    for (n, what) in notes {
        if n > 0 {
            writeln!(out, "  {n} {what}")?;
        }
    }
    Ok(())
}
