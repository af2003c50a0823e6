//! The real agent against real traffic: what it counts per upstream and status
//! must equal what the mock upstream reports it sent, exactly.
//!
//! Every test here holds the machine-wide "agent" lock, so exact counts never share
//! the two CPUs with another agent under test. The loopback test runs agent, mock
//! and client inside a testbed namespace: its `lo` is the same kernel path as the
//! host's, but no other XDP program (a developer's agent on the host `lo`) can hold it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ratewire_tests::agent::Agent;
use ratewire_tests::inspect;
use ratewire_tests::lock;
use ratewire_tests::mock::counts::Counts;
use ratewire_tests::netns::Testbed;
use ratewire_tests::run::{self, MockServer};

const PLAN: &[&str] = &["--plan", "200x6,429x2,500,503", "--retry-after", "2"];
const REQUESTS: u64 = 10_000;
const CONNECTIONS: usize = 8;
/// Responses are counted in the kernel as they arrive; a scrape just after the
/// load ends may still race the last packets' processing.
const SETTLE: Duration = Duration::from_secs(5);

/// Run the plan through `target` while an agent watches `iface`, then require the
/// agent's series for that upstream to equal the mock's report exactly. With
/// `inside`, the agent and the client run in that testbed's namespace. `mode` is
/// the XDP mode the agent must report: native where the driver has it (veth).
fn counts_match(
    inside: Option<&Testbed>,
    iface: &str,
    mode: &str,
    mock: MockServer,
    target: SocketAddr,
) -> Result<()> {
    let ns = inside.map(Testbed::ns);
    let before = inspect::xdp_programs(ns, iface)?;
    ensure!(
        before.is_empty(),
        "{iface} already has XDP program(s) {before:?} attached"
    );
    let agent = match inside {
        Some(bed) => Agent::start_in(bed, &[iface])?,
        None => Agent::start(&[iface])?,
    };
    let attached = agent.metrics()?.value(
        "ratewire_probe_attached",
        &[("iface", iface), ("mode", mode)],
    )?;
    ensure!(
        attached == Some(1.0),
        "{iface} not attached in {mode} mode\n{}",
        agent.output()
    );
    let upstream = target.to_string();
    let early = agent_counts(&agent, &upstream)?;
    ensure!(
        early.is_empty(),
        "counts for {upstream} before any traffic: {early:?}"
    );

    let summary = run::load(inside, target, REQUESTS, CONNECTIONS, &[])?;
    let sent = mock.finish()?;
    ensure!(
        summary.statuses == sent,
        "load saw {summary:?}, mock sent {sent:?}"
    );
    wait_for_counts(&agent, &upstream, &sent)?;

    let metrics = agent.metrics()?;
    let overflow = metrics.by_label("ratewire_map_overflow_total", &[], "map")?;
    ensure!(
        overflow.contains_key("flows")
            && overflow.contains_key("responses")
            && overflow.values().all(|n| *n == 0.0),
        "ratewire_map_overflow_total by map is {overflow:?}, expected every map at 0 \
         (flows and responses at least)"
    );
    ensure!(
        metrics.select("ratewire_build_info", &[]).count() == 1,
        "no ratewire_build_info"
    );
    agent.stop()?;
    let after = inspect::xdp_programs(ns, iface)?;
    ensure!(
        after.is_empty(),
        "XDP program(s) {after:?} still on {iface} after SIGTERM"
    );
    Ok(())
}

/// Status → count of the agent's `ratewire_http_responses_total` for `upstream`,
/// summed over its other labels (route, tls): the mock counts per status only.
fn agent_counts(agent: &Agent, upstream: &str) -> Result<Counts> {
    let by_status = agent.metrics()?.sum_by(
        "ratewire_http_responses_total",
        &[("upstream", upstream)],
        "status",
    )?;
    Ok(by_status
        .into_iter()
        .map(|(status, v)| (status, v as u64))
        .collect())
}

/// Wait (bounded) until the agent's counts equal `sent`, then check once more that
/// they stay there: equal is the goal, not "eventually at least".
fn wait_for_counts(agent: &Agent, upstream: &str, sent: &Counts) -> Result<()> {
    let start = Instant::now();
    loop {
        let seen = agent_counts(agent, upstream)?;
        if &seen == sent {
            break;
        }
        if start.elapsed() > SETTLE {
            bail!(
                "agent counts for {upstream} differ from what the mock sent\n  agent: {seen:?}\n  \
                 mock:  {sent:?}\n  diff (agent - mock): {:?}\n{}",
                diff(&seen, sent),
                agent.output()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let later = agent_counts(agent, upstream)?;
    ensure!(
        &later == sent,
        "agent counts moved after matching: {later:?} vs {sent:?}"
    );
    Ok(())
}

fn diff(seen: &Counts, sent: &Counts) -> BTreeMap<String, i64> {
    seen.keys()
        .chain(sent.keys())
        .map(|k| {
            let get = |m: &Counts| m.get(k).copied().unwrap_or(0) as i64;
            (k.clone(), get(seen) - get(sent))
        })
        .filter(|(_, d)| *d != 0)
        .collect()
}

#[test]
fn veth_ipv4_counts_equal_mock() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let listen = SocketAddr::from((bed.peer_v4(), 8000));
    let mock = MockServer::start(Some(&bed), &[listen], PLAN)?;
    counts_match(None, bed.host_iface(), "native", mock, listen)
}

#[test]
fn veth_ipv6_counts_equal_mock() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let listen = SocketAddr::from((bed.peer_v6(), 8000));
    let mock = MockServer::start(Some(&bed), &[listen], PLAN)?;
    counts_match(None, bed.host_iface(), "native", mock, listen)
}

#[test]
fn loopback_counts_equal_mock() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 8000));
    let mock = MockServer::start(Some(&bed), &[listen], PLAN)?;
    counts_match(Some(&bed), "lo", "generic", mock, listen)
}

/// A crash must not leave the program attached: the agent attaches through a
/// bpf_link, which the kernel drops with the agent's last file descriptor.
#[test]
fn kill9_leaves_no_xdp_attached() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let iface = bed.host_iface();
    let agent = Agent::start(&[iface])?;
    let attached = inspect::xdp_programs(None, iface)?;
    ensure!(
        !attached.is_empty(),
        "agent reports attached but bpftool shows no XDP on {iface}\n{}",
        agent.output()
    );
    agent.kill9()?;
    // The link is released when the dead process's files are closed: promptly,
    // but not necessarily before wait() returns.
    let start = Instant::now();
    loop {
        let left = inspect::xdp_programs(None, iface).context("after kill -9")?;
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(5) {
            bail!("XDP program(s) {left:?} still attached to {iface} 5 s after kill -9");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
