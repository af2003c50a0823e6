//! Replay on a real capture: a scripted HTTP/1.1 server and client talk over
//! 127.0.0.1 while tcpdump records them; replay's counts per (upstream, status) must
//! equal what the server sent and what tshark finds in the same file.
//!
//! Needs root, tcpdump and tshark (`cargo xtask setup` installs them); without them it
//! fails saying which is missing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use ratewire_journal::query::Outcome;
use ratewire_replay::{replay_file, ReplayOptions};

/// What the server does with one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// A Content-Length response, optionally with a body segment that starts with a
    /// status line (a model quoting HTTP), written as its own TCP segment.
    Plain { status: u16, tricky_body: bool },
    /// 100 Continue first, then the status.
    ContinueThen(u16),
    /// A chunked event stream whose chunks start with status lines.
    Chunked(u16),
    /// Close (FIN) without answering.
    Close,
    /// Reset (RST: close with the request body unread).
    Reset,
}

/// One client connection: the answers it asks the server for, in order.
fn script() -> Vec<Vec<Answer>> {
    use Answer::*;
    let mut conns = Vec::new();
    for i in 0..6 {
        conns.push(vec![
            Plain {
                status: 200,
                tricky_body: i % 2 == 0,
            },
            Plain {
                status: 429,
                tricky_body: false,
            },
            Chunked(200),
            Plain {
                status: 503,
                tricky_body: i == 3,
            },
            ContinueThen(200),
        ]);
    }
    conns.push(vec![
        Plain {
            status: 429,
            tricky_body: true,
        },
        Close,
    ]);
    conns.push(vec![
        Plain {
            status: 404,
            tricky_body: false,
        },
        Reset,
    ]);
    conns
}

fn tools_missing() -> Option<String> {
    for tool in ["tcpdump", "tshark"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} not found (apt-get install tcpdump tshark)"));
        }
    }
    None
}

#[test]
fn replay_agrees_with_the_server_and_tshark_on_a_loopback_capture() {
    if let Some(why) = tools_missing() {
        panic!("{why}: this test needs root, tcpdump and tshark");
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("ratewire-loopback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("loopback.pcap");

    let tcpdump = start_tcpdump(&pcap);
    let sent = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let server = {
        let sent = Arc::clone(&sent);
        thread::spawn(move || serve(listener, script(), &sent))
    };
    for answers in script() {
        run_client(port, &answers);
    }
    server.join().unwrap();
    stop_tcpdump(tcpdump);

    let upstream = format!("127.0.0.1:{port}");
    let outcome = replay_file(&pcap, &ReplayOptions::default()).unwrap();
    assert!(outcome.report.capture_error.is_none());
    let mut replayed = BTreeMap::new();
    for (up, what, n) in outcome.report.summary.rows() {
        if up == upstream {
            replayed.insert(what.to_string(), n);
        }
    }
    let sent = sent.lock().unwrap().clone();
    assert_eq!(replayed, sent, "replay vs what the server did");

    let statuses = |m: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
        m.iter()
            .filter(|(k, _)| k.parse::<u16>().is_ok())
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let tshark = tshark_final_statuses(&pcap, port);
    assert_eq!(statuses(&replayed), tshark, "replay vs tshark");
    assert_eq!(outcome.report.stats.flows.interim_responses, 6);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Capture all of `lo`. No capture filter: on some sandboxed kernels a socket filter
/// makes tcpdump drop every packet; the port is selected when reading instead.
fn start_tcpdump(pcap: &Path) -> Child {
    let mut child = Command::new("tcpdump")
        // Immediate mode: without it packets wait up to a second in the kernel ring,
        // and those still waiting when tcpdump stops are lost.
        .args(["-i", "lo", "--immediate-mode", "-U", "-n", "-w"])
        .arg(pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump starts");
    // tcpdump says "listening on lo" once the capture is running.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("listening on") {
        line.clear();
    }
    assert!(
        line.contains("listening on"),
        "tcpdump did not start: {line}"
    );
    // Some kernels deliver the first packets to a new capture socket a moment late.
    thread::sleep(Duration::from_millis(500));
    thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child
}

fn stop_tcpdump(mut child: Child) {
    thread::sleep(Duration::from_millis(300)); // let the last packets reach the file
                                               // SIGTERM, not SIGINT: a shell's background jobs ignore SIGINT, and so would tcpdump.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
}

fn tshark_final_statuses(pcap: &Path, port: u16) -> BTreeMap<String, u64> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-d", &format!("tcp.port=={port},http")])
        .args([
            "-Y",
            &format!("http.response && tcp.srcport=={port}"),
            "-T",
            "fields",
        ])
        .args([
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "http.response.code",
        ])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut counts = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[..2], ["127.0.0.1", &port.to_string()[..]], "{line}");
        // tshark lists 1xx among responses; ratewire counts final responses.
        if !fields[2].starts_with('1') {
            *counts.entry(fields[2].to_owned()).or_default() += 1;
        }
    }
    counts
}

fn serve(listener: TcpListener, script: Vec<Vec<Answer>>, sent: &Mutex<BTreeMap<String, u64>>) {
    let record = |what: String| *sent.lock().unwrap().entry(what).or_default() += 1;
    for answers in script {
        let (stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        for answer in answers {
            let head = read_head(&mut reader);
            let body_len = content_length(&head);
            match answer {
                Answer::Reset => {
                    // Wait for the client's trailing bytes and leave them unread:
                    // closing a socket with unread data sends RST.
                    thread::sleep(Duration::from_millis(100));
                    drop(reader);
                    drop(out);
                    record(Outcome::NoResponse("reset".into()).to_string());
                    break;
                }
                Answer::Close => {
                    read_body(&mut reader, body_len);
                    out.shutdown(Shutdown::Both).unwrap();
                    record(Outcome::NoResponse("closed".into()).to_string());
                    break;
                }
                Answer::ContinueThen(status) => {
                    send(&mut out, b"HTTP/1.1 100 Continue\r\n\r\n");
                    read_body(&mut reader, body_len);
                    let resp = format!("HTTP/1.1 {status} OK\r\nContent-Length: 2\r\n\r\n{{}}");
                    send(&mut out, resp.as_bytes());
                    record(status.to_string());
                }
                Answer::Plain {
                    status,
                    tricky_body,
                } => {
                    read_body(&mut reader, body_len);
                    let body: &[u8] = if tricky_body {
                        b"HTTP/1.1 429 Too Many Requests\r\n\r\n(quoted)"
                    } else {
                        b"{\"ok\":true}"
                    };
                    let head = format!(
                        "HTTP/1.1 {status} Status\r\nretry-after: 1\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    send(&mut out, head.as_bytes());
                    thread::sleep(Duration::from_millis(5)); // separate segments
                    send(&mut out, body);
                    record(status.to_string());
                }
                Answer::Chunked(status) => {
                    read_body(&mut reader, body_len);
                    let head =
                        format!("HTTP/1.1 {status} OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                    send(&mut out, head.as_bytes());
                    for chunk in ["HTTP/1.1 503 x", "data: {}\n\n"] {
                        // Size line and data in separate segments, so the data starts one.
                        send(&mut out, format!("{:x}\r\n", chunk.len()).as_bytes());
                        thread::sleep(Duration::from_millis(5));
                        send(&mut out, format!("{chunk}\r\n").as_bytes());
                    }
                    send(&mut out, b"0\r\n\r\n");
                    record(status.to_string());
                }
            }
        }
    }
}

fn send(out: &mut TcpStream, bytes: &[u8]) {
    out.write_all(bytes).unwrap();
    out.flush().unwrap();
}

fn read_head(reader: &mut impl BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "client closed early"
        );
        head.push_str(&line);
        if line == "\r\n" {
            return head;
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn read_body(reader: &mut impl Read, len: usize) {
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
}

fn run_client(port: u16, answers: &[Answer]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let body = br#"{"model":"m","messages":[]}"#;
    for answer in answers {
        let expect = matches!(answer, Answer::ContinueThen(_));
        let head = format!(
            "POST /v1/chat/completions?key=sk-test HTTP/1.1\r\nHost: upstream\r\n\
             Authorization: Bearer sk-test\r\nx-stainless-retry-count: 0\r\n\
             {}Content-Length: {}\r\n\r\n",
            if expect {
                "Expect: 100-continue\r\n"
            } else {
                ""
            },
            body.len()
        );
        send(&mut stream, head.as_bytes());
        if expect {
            assert!(read_head(&mut reader).starts_with("HTTP/1.1 100"));
        }
        send(&mut stream, body);
        if matches!(answer, Answer::Reset) {
            thread::sleep(Duration::from_millis(20));
            send(&mut stream, b"not a request, left unread");
        }
        match answer {
            Answer::Close | Answer::Reset => {
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest); // EOF or reset
                return;
            }
            Answer::Chunked(_) => {
                read_head(&mut reader);
                // Chunks: size line, data line, until the last chunk and blank line.
                loop {
                    let mut size = String::new();
                    reader.read_line(&mut size).unwrap();
                    let n = usize::from_str_radix(size.trim(), 16).unwrap();
                    read_body(&mut reader, n + 2);
                    if n == 0 {
                        break;
                    }
                }
            }
            _ => {
                let head = read_head(&mut reader);
                read_body(&mut reader, content_length(&head));
            }
        }
    }
    stream.shutdown(Shutdown::Write).unwrap();
    let _ = reader.read_to_end(&mut Vec::new());
}
