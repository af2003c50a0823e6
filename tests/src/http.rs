//! Minimal HTTP/1.1 framing shared by the mock upstream, the load client and the
//! metrics scrapes. Hand-written on purpose: the tests must control every byte and
//! every write (segment) boundary that the kernel probe sees, which a full HTTP stack
//! would hide.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Heads larger than this are refused: a peer that never ends its head is a bug.
const MAX_HEAD: usize = 64 * 1024;

/// A request or response head: the start line and the header fields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
}

/// How the body that follows a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

impl Head {
    /// First value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Status code of a response head (`HTTP/1.1 429 Too Many Requests`).
    pub fn status(&self) -> Option<u16> {
        let mut parts = self.start_line.split(' ');
        let version = parts.next()?;
        let code = parts.next()?;
        (version.starts_with("HTTP/1.") && code.len() == 3)
            .then(|| code.parse().ok())
            .flatten()
    }

    /// The sender asked to close the connection after this message.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> io::Result<Option<usize>> {
        self.header("content-length")
            .map(|v| v.trim().parse().map_err(|_| invalid("bad Content-Length")))
            .transpose()
    }

    /// Body framing of a request (RFC 9112 §6.3: no length means no body).
    pub fn request_framing(&self) -> io::Result<Framing> {
        if self.is_chunked() {
            return Ok(Framing::Chunked);
        }
        Ok(self
            .content_length()?
            .map_or(Framing::Empty, Framing::Length))
    }

    /// Body framing of a response to a non-HEAD request (no length means until close).
    pub fn response_framing(&self) -> io::Result<Framing> {
        let status = self
            .status()
            .ok_or_else(|| invalid("not a response head"))?;
        if status < 200 || status == 204 || status == 304 {
            return Ok(Framing::Empty);
        }
        if self.is_chunked() {
            return Ok(Framing::Chunked);
        }
        Ok(self
            .content_length()?
            .map_or(Framing::UntilClose, Framing::Length))
    }
}

/// Parse a head at the start of `buf`: `Ok(None)` while it is incomplete, else the
/// head and how many bytes it took (including the blank line).
pub fn parse_head(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(invalid("head larger than 64 KiB"))
        } else {
            Ok(None)
        };
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let start_line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid("header line without ':'"))?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect::<io::Result<_>>()?;
    Ok(Some((
        Head {
            start_line,
            headers,
        },
        end + 4,
    )))
}

/// A byte stream with a read buffer, read one HTTP message at a time. Writes go
/// straight to `stream_mut()` so that each write is the caller's choice of segment.
pub struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Conn<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Read more bytes into the buffer; `false` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Next head, or `Ok(None)` when the peer closed cleanly before sending any byte
    /// of it (the normal end of a keep-alive connection).
    pub async fn read_head(&mut self) -> io::Result<Option<Head>> {
        loop {
            if let Some((head, used)) = parse_head(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(head));
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(eof("connection closed inside a head"))
                };
            }
        }
    }

    /// The whole body, de-chunked.
    pub async fn read_body(&mut self, framing: Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.take(n).await,
            Framing::UntilClose => {
                while self.fill().await? {}
                Ok(std::mem::take(&mut self.buf))
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let line = self.take_line().await?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(size, 16)
                        .map_err(|_| invalid("bad chunk size line"))?;
                    if size == 0 {
                        // Trailer fields, up to the blank line.
                        while !self.take_line().await?.is_empty() {}
                        return Ok(body);
                    }
                    body.extend(self.take(size).await?);
                    if !self.take_line().await?.is_empty() {
                        return Err(invalid("chunk not followed by CRLF"));
                    }
                }
            }
        }
    }

    async fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(eof("connection closed inside a body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn take_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line larger than 64 KiB"));
            }
            if !self.fill().await? {
                return Err(eof("connection closed inside a chunked body"));
            }
        }
    }
}

/// One blocking request on a fresh connection (for synchronous tests): the response
/// head and body, within `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> io::Result<(Head, Vec<u8>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let exchange = async {
            let mut conn = Conn::new(TcpStream::connect(addr).await?);
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.stream_mut().write_all(request.as_bytes()).await?;
            let head = conn
                .read_head()
                .await?
                .ok_or_else(|| eof("connection closed before a response"))?;
            let body = conn.read_body(head.response_framing()?).await?;
            Ok((head, body))
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{method} {path} timed out"),
            )
        })?
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn eof(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &'static [u8]) -> (Head, Vec<u8>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut conn = Conn::new(bytes);
            let head = conn.read_head().await.unwrap().unwrap();
            let body = conn
                .read_body(head.response_framing().unwrap())
                .await
                .unwrap();
            (head, body)
        })
    }

    #[test]
    fn reads_content_length_response() {
        let (head, body) = read(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 3\r\n\r\nabcEXTRA");
        assert_eq!(head.status(), Some(429));
        assert_eq!(head.header("retry-after"), Some("2"));
        assert_eq!(body, b"abc");
    }

    #[test]
    fn reads_chunked_response() {
        let (head, body) = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\nT: 1\r\n\r\n",
        );
        assert_eq!(head.response_framing().unwrap(), Framing::Chunked);
        assert_eq!(body, b"hello!");
    }

    #[test]
    fn reads_until_close_without_length() {
        let (_, body) = read(b"HTTP/1.0 200 OK\r\n\r\nrest of stream");
        assert_eq!(body, b"rest of stream");
    }

    #[test]
    fn incomplete_head_is_none_and_request_without_length_has_no_body() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none());
        let (head, used) = parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nnext")
            .unwrap()
            .unwrap();
        assert_eq!(used, 27);
        assert_eq!(head.request_framing().unwrap(), Framing::Empty);
        assert_eq!(head.status(), None);
    }
}
