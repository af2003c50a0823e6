//! The testbed cleans up after itself: on drop, on panic, and after a crashed run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use ratewire_tests::cmd::ip;
use ratewire_tests::inspect;
use ratewire_tests::netns::{self, Testbed};
use ratewire_tests::proc::Proc;

/// What a testbed made, remembered so it can be checked after the testbed is gone.
struct Made {
    ns: String,
    host_iface: String,
    /// A process running inside the namespace.
    pid: u32,
}

/// Record `bed`'s names and start a long sleep inside it.
fn make(bed: &Testbed) -> Result<(Made, Proc)> {
    let mut sleep = Command::new("sleep");
    sleep.arg("600");
    let sleeper = bed.spawn_in_ns("sleep", &sleep)?;
    let made = Made {
        ns: bed.ns().to_string(),
        host_iface: bed.host_iface().to_string(),
        pid: sleeper.pid(),
    };
    Ok((made, sleeper))
}

/// Nothing of `made` is left: namespace, link, programs on the link, process.
fn assert_gone(made: &Made) -> Result<()> {
    ensure!(
        !inspect::netns_exists(&made.ns)?,
        "namespace {} left behind",
        made.ns
    );
    ensure!(
        !inspect::link_exists(&made.host_iface)?,
        "link {} left behind",
        made.host_iface
    );
    let devices = inspect::bpftool_net_devices()?;
    ensure!(
        !devices.contains(&made.host_iface),
        "bpftool net show still lists {}: {devices:?}",
        made.host_iface
    );
    // SIGKILL is delivered asynchronously; give it a moment.
    let start = Instant::now();
    while alive(made.pid) {
        ensure!(
            start.elapsed() < Duration::from_secs(5),
            "pid {} in {} survived",
            made.pid,
            made.ns
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Running: exists and is not a zombie (a dead child its parent has not reaped yet).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|rest| !rest.starts_with('Z'))
    })
}

#[test]
fn testbed_is_wired_as_documented() -> Result<()> {
    let bed = Testbed::new()?;
    let host = bed.host_iface();
    ensure!(host.len() <= 15 && host.starts_with("rwt") && host.ends_with('h'));
    ensure!(bed
        .ns()
        .starts_with(&format!("rwt-{}-", std::process::id())));
    ensure!(inspect::netns_exists(bed.ns())?);
    let host_addrs = ip(&["-br", "addr", "show", "dev", host])?;
    let peer_addrs = ip(&[
        "-n",
        bed.ns(),
        "-br",
        "addr",
        "show",
        "dev",
        &bed.ns_iface(),
    ])?;
    for (addrs, v4, v6) in [
        (
            &host_addrs,
            bed.host_v4().to_string(),
            bed.host_v6().to_string(),
        ),
        (
            &peer_addrs,
            bed.peer_v4().to_string(),
            bed.peer_v6().to_string(),
        ),
    ] {
        ensure!(
            addrs.contains(&format!("{v4}/24")) && addrs.contains(&format!("{v6}/64")),
            "{addrs}"
        );
        ensure!(addrs.contains(" UP "), "link not up: {addrs}");
    }
    let lo = ip(&["-n", bed.ns(), "-br", "link", "show", "dev", "lo"])?;
    ensure!(lo.contains("UP"), "lo not up in the namespace: {lo}");
    Ok(())
}

#[test]
fn dropped_testbed_leaves_nothing() -> Result<()> {
    let bed = Testbed::new()?;
    let (made, _sleeper) = make(&bed)?;
    ensure!(alive(made.pid));
    drop(bed);
    assert_gone(&made)
}

#[test]
fn panicking_test_leaves_nothing() -> Result<()> {
    let made = Mutex::new(None);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let bed = Testbed::new().expect("testbed");
        let (record, _sleeper) = make(&bed).expect("spawn in testbed");
        *made.lock().unwrap() = Some(record);
        panic!("deliberate panic inside a testbed scope");
    }));
    ensure!(outcome.is_err(), "the closure was meant to panic");
    let made = made
        .into_inner()
        .unwrap()
        .expect("testbed was made before the panic");
    assert_gone(&made)
}

/// A run that crashed left a namespace (owner pid dead), its veth and a process;
/// the next testbed creation reaps them, and leaves live testbeds alone.
#[test]
fn stale_testbeds_of_dead_runs_are_reaped() -> Result<()> {
    let live = Testbed::new()?;
    // The "crashing run" builds its testbed while alive (so no concurrent reaper
    // touches it), leaves a process inside, and is then killed.
    let script = "set -e; ns=rwt-$$-0; ip netns add $ns; \
        ip link add rwt250h type veth peer name rwt250n netns $ns; \
        ip link add rwt251h type veth peer name rwt251n; \
        ip netns exec $ns sleep 600 </dev/null >/dev/null 2>&1 & \
        echo inside $!; echo ns $ns; exec sleep 600";
    let mut crashed = Proc::spawn("crashing run", {
        let mut sh = Command::new("sh");
        sh.args(["-c", script]);
        sh
    })?;
    let ns = crashed
        .wait_for_lines("ns ", 1, Duration::from_secs(10))?
        .remove(0);
    let inside: u32 = crashed.wait_for_lines("inside ", 1, Duration::from_secs(1))?[0].parse()?;
    crashed.signal(libc::SIGKILL)?;
    crashed.wait(Duration::from_secs(5))?;

    netns::reap_stale()?;
    ensure!(
        inspect::netns_exists(live.ns())?,
        "a live testbed was reaped"
    );
    ensure!(
        inspect::link_exists(live.host_iface())?,
        "a live testbed's link was reaped"
    );
    assert_gone(&Made {
        ns,
        host_iface: "rwt250h".into(),
        pid: inside,
    })?;
    // An `rwt<N>h` link whose peer is in no named namespace is an orphan too.
    ensure!(
        !inspect::link_exists("rwt251h")?,
        "orphan link rwt251h left behind"
    );
    Ok(())
}
