//! `cargo xtask bench xdp|tc`: per-packet cost of ratewire's kernel programs, measured
//! with BPF_PROG_TEST_RUN (the kernel runs the program `REPEAT` times on one packet and
//! reports the mean), as a ratio to an empty program of the same type (XDP_PASS /
//! TC_ACT_UNSPEC) loaded in the same run.
//!
//! Repeats of one packet see the state the first run left: a request head inserts its
//! flow once and then finds it pending; a response head finds no request awaiting it
//! (the unpaired path). The paired path (claim, count, event, header scan) runs once
//! per real response and is exercised end to end by the tests, not here.

use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{bail, Context as _};
use aya::{
    programs::{SchedClassifier, Xdp},
    Ebpf,
};
use ratewire::probe::{OBJECT, TC_PROGRAM, XDP_PROGRAM};

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 7;

fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "xdp".to_owned());
    let mut ebpf = Ebpf::load(OBJECT).context("loading ratewire's eBPF object (root?)")?;
    let (ours, empty, expect) = match which.as_str() {
        "xdp" => {
            let xdp: &mut Xdp = ebpf
                .program_mut(XDP_PROGRAM)
                .context("no XDP program")?
                .try_into()?;
            xdp.load()?;
            let empty = raw::load_empty(raw::BPF_PROG_TYPE_XDP, 2)?;
            (xdp.fd()?.as_fd().as_raw_fd(), empty, 2)
        }
        "tc" => {
            let tc: &mut SchedClassifier = ebpf
                .program_mut(TC_PROGRAM)
                .context("no TC program")?
                .try_into()?;
            tc.load()?;
            let empty = raw::load_empty(raw::BPF_PROG_TYPE_SCHED_CLS, -1)?;
            (tc.fd()?.as_fd().as_raw_fd(), empty, -1)
        }
        other => bail!("unknown benchmark '{other}' (known: xdp, tc)"),
    };
    println!(
        "{which}: per-packet cost, BPF_PROG_TEST_RUN, {REPEAT} repeats, median of {ROUNDS} rounds"
    );
    println!(
        "{:<34} {:>10} {:>12} {:>8}",
        "packet", "empty ns", "ratewire ns", "ratio"
    );
    for (name, packet) in packets::all() {
        let base = median_ns(empty.as_raw_fd(), &packet, expect)?;
        let cost = median_ns(ours, &packet, expect)?;
        println!("{name:<34} {base:>10.1} {cost:>12.1} {:>7.2}x", cost / base);
    }
    Ok(())
}

fn median_ns(prog_fd: i32, packet: &[u8], expect: i32) -> anyhow::Result<f64> {
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let d = raw::test_run(prog_fd, packet, REPEAT, expect)?;
        rounds.push(d.as_secs_f64() * 1e9);
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[ROUNDS / 2])
}

/// The packets the program sees most: a TCP segment that is not HTTP, a response
/// head, and a body segment that follows it.
mod packets {
    pub fn all() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("non-HTTP (UDP datagram)", udp(b"\x12\x34\x01\x00\x00\x01\x00\x00")),
            ("non-HTTP (TCP, TLS record)", tcp(b"\x17\x03\x03\x00\x40 ciphertext........")),
            ("non-HTTP (TCP, bare ACK)", tcp(b"")),
            ("response head (429, unpaired)", tcp(b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\ncontent-length: 0\r\n\r\n")),
            ("request head (POST, 300 B head)", tcp(REQUEST)),
            ("body segment", tcp(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n")),
        ]
    }

    const REQUEST: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 10.0.0.2:8000\r\n\
        User-Agent: OpenAI/Python 1.0\r\nAccept: application/json\r\n\
        Content-Type: application/json\r\nx-stainless-retry-count: 0\r\n\
        x-stainless-lang: python\r\nx-stainless-os: Linux\r\nContent-Length: 120\r\n\
        Authorization: Bearer not-a-real-key-just-bench-bytes\r\n\r\n";

    fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        p.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            proto,
            0,
            0,
        ]);
        p.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        p.extend_from_slice(l4);
        p
    }

    fn tcp(payload: &[u8]) -> Vec<u8> {
        let mut l4 = vec![
            0x1f, 0x40, 0xc3, 0x50, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ];
        l4.extend_from_slice(payload);
        ipv4(6, &l4)
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        let len = (8 + payload.len()) as u16;
        let mut l4 = vec![0x00, 0x35, 0xc3, 0x50, (len >> 8) as u8, len as u8, 0, 0];
        l4.extend_from_slice(payload);
        ipv4(17, &l4)
    }
}

/// The two bpf(2) commands aya does not wrap: loading a bare program from instructions
/// and BPF_PROG_TEST_RUN.
mod raw {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    use std::time::Duration;

    use anyhow::bail;

    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    pub const BPF_PROG_TYPE_XDP: u32 = 6;
    pub const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;

    /// `union bpf_attr` is 144 bytes on 6.x; unused fields stay zero.
    #[repr(C, align(8))]
    struct Attr([u8; 144]);

    impl Attr {
        fn new() -> Attr {
            Attr([0; 144])
        }
        fn put_u32(&mut self, off: usize, v: u32) {
            self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        }
        fn put_u64(&mut self, off: usize, v: u64) {
            self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        }
        fn get_u32(&self, off: usize) -> u32 {
            u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap())
        }
    }

    fn bpf(cmd: libc::c_long, attr: &mut Attr) -> std::io::Result<i64> {
        // SAFETY: attr is a valid, zero-initialised bpf_attr of the size we pass.
        let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, 144usize) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    /// `r0 = verdict; exit`.
    pub fn load_empty(prog_type: u32, verdict: i32) -> anyhow::Result<OwnedFd> {
        let imm = verdict.to_le_bytes();
        let insns: [u64; 2] = [
            u64::from_le_bytes([0xb7, 0, 0, 0, imm[0], imm[1], imm[2], imm[3]]),
            u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
        ];
        let license = b"GPL\0";
        let mut attr = Attr::new();
        attr.put_u32(0, prog_type);
        attr.put_u32(4, insns.len() as u32);
        attr.put_u64(8, insns.as_ptr() as u64);
        attr.put_u64(16, license.as_ptr() as u64);
        let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
        // SAFETY: the kernel just returned this fd to us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Mean duration of one run of `prog_fd` on `packet`, over `repeat` runs.
    pub fn test_run(
        prog_fd: i32,
        packet: &[u8],
        repeat: u32,
        expect: i32,
    ) -> anyhow::Result<Duration> {
        let mut out = vec![0u8; packet.len() + 256];
        let mut attr = Attr::new();
        attr.put_u32(0, prog_fd as u32);
        attr.put_u32(8, packet.len() as u32); // data_size_in
        attr.put_u32(12, out.len() as u32); // data_size_out
        attr.put_u64(16, packet.as_ptr() as u64); // data_in
        attr.put_u64(24, out.as_mut_ptr() as u64); // data_out
        attr.put_u32(32, repeat);
        bpf(BPF_PROG_TEST_RUN, &mut attr)?;
        let (retval, duration_ns) = (attr.get_u32(4), attr.get_u32(36));
        if retval as i32 != expect {
            bail!("program returned {}, expected {expect}", retval as i32);
        }
        Ok(Duration::from_nanos(duration_ns as u64))
    }
}
