//! `ratewire-load`: a bounded keep-alive load client that reports exactly which
//! status each request got, or why it got none.
//!
//! Every request has exactly one outcome: a status code when a complete response was
//! read, else a failure reason. Failures: `reset` (ECONNRESET), `closed` (FIN
//! before any response byte), `timeout` (no complete response within the request
//! timeout), `send_error`, `io_error`, `bad_response`; the same reasons with a
//! `_mid_response` suffix when the head had arrived but the body did not. A failed
//! request is not retried (retries would make totals depend on timing); the
//! connection is dropped and the next request opens a new one.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http::{Conn, Framing};

/// What to send, and the bounds on it.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `host:port`, `[v6]:port` for IPv6.
    pub target: String,
    /// At least 1.
    pub connections: usize,
    pub requests: u64,
    pub stream: bool,
    /// Stop claiming new requests after this long; unsent ones are reported.
    pub deadline: Duration,
    pub request_timeout: Duration,
}

/// The JSON printed by `ratewire-load`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub target: String,
    pub requests: u64,
    /// Requests attempted; `statuses` and `failures` add up to this.
    pub sent: u64,
    /// Requests never attempted because the deadline passed.
    pub unsent: u64,
    /// Status code → complete responses with it.
    pub statuses: BTreeMap<String, u64>,
    /// Failure reason → requests that ended with it.
    pub failures: BTreeMap<String, u64>,
    pub connections_opened: u64,
    /// Failed connection attempts (not requests: nothing was sent on them).
    pub connect_errors: u64,
    pub elapsed_secs: f64,
}

struct Shared {
    config: LoadConfig,
    body: String,
    started: Instant,
    claimed: AtomicU64,
    connections_opened: AtomicU64,
    connect_errors: AtomicU64,
    outcomes: Mutex<Outcomes>,
}

#[derive(Default)]
struct Outcomes {
    statuses: BTreeMap<String, u64>,
    failures: BTreeMap<String, u64>,
}

/// Send `config.requests` requests over `config.connections` connections.
pub async fn run(config: LoadConfig) -> Summary {
    let shared = Arc::new(Shared {
        body: format!(
            r#"{{"model":"mock","messages":[{{"role":"user","content":"Say hello"}}],"max_tokens":8,"stream":{}}}"#,
            config.stream
        ),
        config,
        started: Instant::now(),
        claimed: AtomicU64::new(0),
        connections_opened: AtomicU64::new(0),
        connect_errors: AtomicU64::new(0),
        outcomes: Mutex::default(),
    });
    let workers: Vec<_> = (0..shared.config.connections)
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    for w in workers {
        w.await.expect("load worker panicked");
    }
    let outcomes = std::mem::take(&mut *shared.outcomes.lock().expect("outcomes lock"));
    let sent = outcomes
        .statuses
        .values()
        .chain(outcomes.failures.values())
        .sum();
    Summary {
        target: shared.config.target.clone(),
        requests: shared.config.requests,
        sent,
        unsent: shared.config.requests - sent,
        statuses: outcomes.statuses,
        failures: outcomes.failures,
        connections_opened: shared.connections_opened.load(Ordering::Relaxed),
        connect_errors: shared.connect_errors.load(Ordering::Relaxed),
        elapsed_secs: shared.started.elapsed().as_secs_f64(),
    }
}

async fn worker(shared: Arc<Shared>) {
    let deadline = shared.started + shared.config.deadline;
    let mut conn: Option<Conn<TcpStream>> = None;
    while Instant::now() < deadline {
        let Some(c) = conn.as_mut() else {
            conn = connect(&shared, deadline).await;
            continue;
        };
        // Claim only with a connection in hand, so a request is either sent or unsent.
        if shared.claimed.fetch_add(1, Ordering::Relaxed) >= shared.config.requests {
            return;
        }
        let limit = shared
            .config
            .request_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let mut got_head = false;
        let outcome = tokio::time::timeout(limit, exchange(&shared, c, &mut got_head)).await;
        let (outcome, keep) = match outcome {
            Ok(Ok((status, keep))) => (Ok(status), keep),
            Ok(Err(reason)) => (Err(reason), false),
            Err(_) => (Err("timeout"), false),
        };
        if !keep {
            conn = None;
        }
        shared.record(outcome, got_head);
    }
}

async fn connect(shared: &Shared, deadline: Instant) -> Option<Conn<TcpStream>> {
    let limit = shared
        .config
        .request_timeout
        .min(deadline.saturating_duration_since(Instant::now()));
    match tokio::time::timeout(limit, TcpStream::connect(&shared.config.target)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            shared.connections_opened.fetch_add(1, Ordering::Relaxed);
            Some(Conn::new(stream))
        }
        _ => {
            shared.connect_errors.fetch_add(1, Ordering::Relaxed);
            // Upstream not there (yet): back off instead of spinning until the deadline.
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// One request/response. Ok: the status and whether the connection can be reused.
async fn exchange(
    shared: &Shared,
    conn: &mut Conn<TcpStream>,
    got_head: &mut bool,
) -> Result<(u16, bool), &'static str> {
    let accept = if shared.config.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: {accept}\r\nContent-Length: {}\r\n\r\n{}",
        shared.config.target,
        shared.body.len(),
        shared.body
    );
    conn.stream_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|_| "send_error")?;
    let head = match conn.read_head().await {
        Ok(Some(head)) => head,
        Ok(None) => return Err("closed"),
        Err(e) => return Err(reason(&e)),
    };
    *got_head = true;
    let status = head.status().ok_or("bad_response")?;
    let framing = head.response_framing().map_err(|_| "bad_response")?;
    conn.read_body(framing).await.map_err(|e| reason(&e))?;
    Ok((
        status,
        !head.wants_close() && framing != Framing::UntilClose,
    ))
}

fn reason(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "reset",
        io::ErrorKind::UnexpectedEof => "closed",
        io::ErrorKind::InvalidData => "bad_response",
        _ => "io_error",
    }
}

impl Shared {
    fn record(&self, outcome: Result<u16, &'static str>, got_head: bool) {
        let mut outcomes = self.outcomes.lock().expect("outcomes lock");
        let (map, key) = match outcome {
            Ok(status) => (&mut outcomes.statuses, status.to_string()),
            Err(reason) if got_head => (&mut outcomes.failures, format!("{reason}_mid_response")),
            Err(reason) => (&mut outcomes.failures, reason.to_string()),
        };
        *map.entry(key).or_default() += 1;
    }
}
