//! Accept loop and per-connection request handling of the mock upstream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::counts::Tally;
use super::plan::{Plan, Step};
use super::response::{self, RetryHints, Segment};
use crate::http::Conn;

/// What the mock answers, fixed for its lifetime.
pub struct MockConfig {
    pub plan: Plan,
    pub hints: RetryHints,
    /// Pause between the head and the body segment of a `split429` step.
    pub split_pause: Duration,
}

/// Shared state of all connections: the plan position and the tally.
pub struct Mock {
    config: MockConfig,
    next: AtomicU64,
    pub tally: Tally,
}

impl Mock {
    pub fn new(config: MockConfig) -> Self {
        Mock {
            config,
            next: AtomicU64::new(0),
            tally: Tally::default(),
        }
    }
}

/// Serve connections from `listener` until the process ends.
pub async fn serve(listener: TcpListener, mock: Arc<Mock>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, mock.clone()));
            }
            // Out of fds or similar: back off instead of spinning.
            Err(e) => {
                eprintln!("ratewire-mock: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, mock: Arc<Mock>) {
    // Each write must leave as its own segment (see `response`).
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    loop {
        let request = match conn.read_head().await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(_) => return mock.tally.record("bad_request"),
        };
        let body = match request.request_framing() {
            Ok(framing) => conn.read_body(framing).await,
            Err(e) => Err(e),
        };
        let Ok(body) = body else {
            return mock.tally.record("bad_request");
        };
        let close = request.wants_close();
        let step = mock
            .config
            .plan
            .step(mock.next.fetch_add(1, Ordering::Relaxed));
        let segments = match step {
            Step::Status(code) => {
                response::status(code, wants_stream(&body), close, &mock.config.hints)
            }
            Step::Split429 => response::split429(mock.config.split_pause, close),
            Step::Reset => {
                // SO_LINGER 0: close() sends RST instead of FIN.
                let _ = conn.stream_mut().set_zero_linger();
                return mock.tally.record("reset");
            }
            Step::Close => {
                let _ = conn.stream_mut().shutdown().await;
                return mock.tally.record("close");
            }
            Step::Stall => {
                mock.tally.record("stall");
                // Hold the connection open, unanswered, until the peer gives up.
                let mut sink = [0u8; 1024];
                while matches!(conn.stream_mut().read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        };
        if send(conn.stream_mut(), segments).await.is_err() {
            return mock.tally.record("write_failed");
        }
        mock.tally.record(&step.to_string());
        if close {
            return;
        }
    }
}

async fn send(stream: &mut TcpStream, segments: Vec<Segment>) -> std::io::Result<()> {
    for segment in segments {
        if !segment.pause.is_zero() {
            tokio::time::sleep(segment.pause).await;
        }
        stream.write_all(&segment.bytes).await?;
        stream.flush().await?;
    }
    Ok(())
}

/// The request body asks for SSE (`"stream": true`).
fn wants_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("stream").and_then(|s| s.as_bool()) == Some(true))
}
