//! The ground truth first: the mock's report of what it sent must equal what the
//! load client received, over loopback and over a real veth testbed, before either
//! is used to judge the agent.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use ratewire_tests::http;
use ratewire_tests::mock::counts::Counts;
use ratewire_tests::netns::Testbed;
use ratewire_tests::run::{self, MockServer};

const MIXED_PLAN: &str = "200x6,429x2,500,503";

fn loopback() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

fn counts(pairs: &[(&str, u64)]) -> Counts {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// 10,000 requests of the mixed plan through `target`: deterministic totals, and
/// the client saw exactly what the mock sent.
fn mixed_plan_matches(mock: MockServer, target: SocketAddr, extra: &[&str]) -> Result<()> {
    let summary = run::load(None, target, 10_000, 8, extra)?;
    let sent = mock.finish()?;
    let expected = counts(&[("200", 6000), ("429", 2000), ("500", 1000), ("503", 1000)]);
    assert_eq!(sent, expected, "mock report");
    assert_eq!(summary.statuses, expected, "load summary: {summary:?}");
    assert!(summary.failures.is_empty(), "{summary:?}");
    assert!(summary.connections_opened >= 8, "{summary:?}");
    Ok(())
}

#[test]
fn loopback_mixed_plan_counts_agree() -> Result<()> {
    let mock = MockServer::start(None, &[loopback()], &["--plan", MIXED_PLAN])?;
    let target = mock.addr();
    mixed_plan_matches(mock, target, &[])
}

/// One plan across listeners: 5,000 requests (500 whole cycles) on each address.
#[test]
fn dual_stack_listeners_share_one_plan() -> Result<()> {
    let listen = [loopback(), SocketAddr::from((Ipv6Addr::LOCALHOST, 0))];
    let mock = MockServer::start(None, &listen, &["--plan", MIXED_PLAN])?;
    let half = counts(&[("200", 3000), ("429", 1000), ("500", 500), ("503", 500)]);
    for &target in mock.addrs() {
        assert_eq!(
            run::load(None, target, 5000, 4, &[])?.statuses,
            half,
            "via {target}"
        );
    }
    let total = counts(&[("200", 6000), ("429", 2000), ("500", 1000), ("503", 1000)]);
    assert_eq!(mock.finish()?, total);
    Ok(())
}

#[test]
fn veth_ipv4_mixed_plan_counts_agree() -> Result<()> {
    let bed = Testbed::new()?;
    let listen = SocketAddr::from((bed.peer_v4(), 8000));
    let mock = MockServer::start(Some(&bed), &[listen], &["--plan", MIXED_PLAN])?;
    mixed_plan_matches(mock, listen, &[])
}

#[test]
fn veth_ipv6_streaming_mixed_plan_counts_agree() -> Result<()> {
    let bed = Testbed::new()?;
    let listen = SocketAddr::from((bed.peer_v6(), 8000));
    let mock = MockServer::start(Some(&bed), &[listen], &["--plan", MIXED_PLAN])?;
    mixed_plan_matches(mock, listen, &["--stream"])
}

/// Each failure step reaches the client as the failure it is meant to be, and a
/// split429 is a 200 to a client that reads HTTP properly.
#[test]
fn failure_steps_map_to_client_failures() -> Result<()> {
    let plan = "200x20,reset,close,split429,429,stall";
    let mock = MockServer::start(None, &[loopback()], &["--plan", plan])?;
    // 10 cycles of 25; each stall costs one request timeout on one connection.
    let summary = run::load(None, mock.addr(), 250, 4, &["--request-timeout-ms", "300"])?;
    let sent = mock.finish()?;
    let steps = [
        ("200", 200),
        ("429", 10),
        ("reset", 10),
        ("close", 10),
        ("split429", 10),
        ("stall", 10),
    ];
    assert_eq!(sent, counts(&steps));
    let failures: BTreeMap<String, u64> = counts(&[("reset", 10), ("closed", 10), ("timeout", 10)]);
    assert_eq!(summary.failures, failures, "{summary:?}");
    assert_eq!(
        summary.statuses,
        counts(&[("200", 210), ("429", 10)]),
        "{summary:?}"
    );
    Ok(())
}

#[test]
fn retry_after_headers_and_streaming_body() -> Result<()> {
    let timeout = Duration::from_secs(5);
    let args = [
        "--plan",
        "429,503,500,200",
        "--retry-after",
        "7",
        "--retry-after-ms",
        "7000",
    ];
    let mock = MockServer::start(None, &[loopback()], &args)?;
    for status in [429, 503] {
        let (head, _) = http::request(mock.addr(), "POST", "/v1/chat/completions", "{}", timeout)?;
        assert_eq!(head.status(), Some(status));
        assert_eq!(head.header("retry-after"), Some("7"));
        assert_eq!(head.header("retry-after-ms"), Some("7000"));
    }
    let (head, _) = http::request(mock.addr(), "GET", "/any/path", "", timeout)?;
    assert_eq!(
        (head.status(), head.header("retry-after")),
        (Some(500), None)
    );
    let (head, body) = http::request(
        mock.addr(),
        "POST",
        "/v1/chat/completions",
        r#"{"stream": true}"#,
        timeout,
    )?;
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let body = String::from_utf8(body)?;
    assert!(
        body.starts_with("data: {") && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );

    let args = [
        "--plan",
        "429",
        "--retry-after",
        "120",
        "--retry-after-date",
    ];
    let dated = MockServer::start(None, &[loopback()], &args)?;
    let (head, _) = http::request(dated.addr(), "POST", "/", "{}", timeout)?;
    let date = head.header("retry-after").unwrap_or_default();
    // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    let fixdate = date.len() == 29 && &date[3..5] == ", " && date.ends_with(" GMT");
    assert!(fixdate, "Retry-After is not an HTTP-date: {date:?}");
    Ok(())
}

#[test]
fn sigusr1_snapshots_and_sigterm_reports_final_counts() -> Result<()> {
    let mock = MockServer::start(None, &[loopback()], &["--plan", "200,404"])?;
    run::load(None, mock.addr(), 5, 1, &[])?;
    assert_eq!(mock.snapshot()?, counts(&[("200", 3), ("404", 2)]));
    run::load(None, mock.addr(), 3, 2, &[])?;
    assert_eq!(mock.finish()?, counts(&[("200", 4), ("404", 4)]));
    Ok(())
}
