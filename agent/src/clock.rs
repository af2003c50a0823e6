//! The probes stamp events with `bpf_ktime_get_ns()`, i.e. CLOCK_MONOTONIC (time since
//! boot, excluding suspend). Wall-clock time is that plus the current offset between
//! CLOCK_REALTIME and CLOCK_MONOTONIC, re-read for every batch so NTP steps are
//! followed. An event read long after it happened is off by any step in between.

/// Current CLOCK_MONOTONIC in ns, the probes' clock.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// Offset to add to a probe timestamp to get Unix ns.
pub fn wall_offset_ns() -> i128 {
    read(libc::CLOCK_REALTIME) as i128 - read(libc::CLOCK_MONOTONIC) as i128
}

pub fn to_unix_ns(mono_ns: u64, offset: i128) -> u64 {
    (mono_ns as i128 + offset).clamp(0, u64::MAX as i128) as u64
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
