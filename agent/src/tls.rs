//! TLS in userspace: which OpenSSL libraries to attach the uprobes to, and which TCP
//! connection an SSL object's socket is (the kernel only knows the process and fd).

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use ratewire_common::types::{ipv4_mapped, FlowKey, NO_FD};

/// The OpenSSL library of the system, where Debian puts it.
pub const SYSTEM_LIBSSL: &str = "/lib/x86_64-linux-gnu/libssl.so.3";

/// The functions probed in each library: (symbol, entry program, return program).
pub const FUNCTIONS: [(&str, &str, Option<&str>); 5] = [
    (
        "SSL_write",
        "ratewire_ssl_write",
        Some("ratewire_ssl_write_ret"),
    ),
    (
        "SSL_write_ex",
        "ratewire_ssl_write",
        Some("ratewire_ssl_write_ret"),
    ),
    (
        "SSL_read",
        "ratewire_ssl_read",
        Some("ratewire_ssl_read_ret"),
    ),
    (
        "SSL_read_ex",
        "ratewire_ssl_read_ex",
        Some("ratewire_ssl_read_ret"),
    ),
    ("SSL_free", "ratewire_ssl_free", None),
];

/// Is this file name an OpenSSL libssl shared object (`libssl.so.3`, `libssl.so.1.1`)?
/// NSS's `libssl3.so` is another library with other functions.
pub fn is_libssl(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("libssl.so"))
}

/// A library file's identity: uprobes attach per inode, so one attach covers every
/// process mapping the file, whatever path it is mapped under.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The system's libssl: what `ldconfig -p` lists, else Debian's path.
pub fn system_libs() -> Vec<PathBuf> {
    let mut libs = BTreeSet::new();
    if let Ok(out) = Command::new("ldconfig").arg("-p").output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "	libssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3"
            if let Some((_, path)) = line.split_once("=> ") {
                let path = PathBuf::from(path.trim());
                if is_libssl(&path) && line.contains("x86-64") {
                    libs.insert(fs::canonicalize(&path).unwrap_or(path));
                }
            }
        }
    }
    if libs.is_empty() && Path::new(SYSTEM_LIBSSL).exists() {
        libs.insert(PathBuf::from(SYSTEM_LIBSSL));
    }
    libs.into_iter().collect()
}

/// Every distinct libssl mapped by a running process, as a path this process can open
/// (through `/proc/<pid>/root`, so libraries in other mount namespaces count too).
pub fn mapped_libs() -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut libs = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return libs;
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        for line in maps.lines() {
            let Some(path) = line.split_whitespace().nth(5) else {
                continue;
            };
            if !path.starts_with('/') || !is_libssl(Path::new(path)) {
                continue;
            }
            let via_root = PathBuf::from(format!("/proc/{pid}/root{path}"));
            if let Some(id) = file_id(&via_root) {
                if seen.insert(id) {
                    libs.push(if file_id(Path::new(path)) == Some(id) {
                        PathBuf::from(path)
                    } else {
                        via_root
                    });
                }
            }
        }
    }
    libs
}

/// `(tgid, fd)` -> the TCP connection behind it, read from /proc. Cached per socket
/// inode; when the fd is already closed (the process read its last response and
/// exited), the last connection resolved on that fd is used.
#[derive(Default)]
pub struct SocketResolver {
    cache: HashMap<(u32, u32), (u64, FlowKey)>,
}

/// Resolutions kept before the cache is cleared (bounded memory).
const CACHE_MAX: usize = 65_536;

impl SocketResolver {
    pub fn resolve(&mut self, tgid: u32, fd: u32) -> Option<FlowKey> {
        if fd == NO_FD {
            return None;
        }
        let inode = match socket_inode(tgid, fd) {
            Some(inode) => inode,
            None => return self.cache.get(&(tgid, fd)).map(|(_, flow)| *flow),
        };
        if let Some((cached, flow)) = self.cache.get(&(tgid, fd)) {
            if *cached == inode {
                return Some(*flow);
            }
        }
        let flow = tcp_connection(tgid, inode)?;
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert((tgid, fd), (inode, flow));
        Some(flow)
    }
}

/// The socket inode of `/proc/<tgid>/fd/<fd>` (`socket:[N]`).
fn socket_inode(tgid: u32, fd: u32) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{tgid}/fd/{fd}")).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The TCP connection with socket `inode`, from the process's network namespace.
fn tcp_connection(tgid: u32, inode: u64) -> Option<FlowKey> {
    ["tcp", "tcp6"].iter().find_map(|table| {
        let text = fs::read_to_string(format!("/proc/{tgid}/net/{table}")).ok()?;
        find_in_tcp_table(&text, inode)
    })
}

/// Find `inode` in a `/proc/net/tcp{,6}` table: local address is the client side.
pub fn find_in_tcp_table(text: &str, inode: u64) -> Option<FlowKey> {
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(9).and_then(|c| c.parse::<u64>().ok()) != Some(inode) {
            continue;
        }
        let (client_addr, client_port) = parse_endpoint(cols.get(1)?)?;
        let (upstream_addr, upstream_port) = parse_endpoint(cols.get(2)?)?;
        return Some(FlowKey {
            client_addr,
            upstream_addr,
            client_port,
            upstream_port,
        });
    }
    None
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), each 32-bit word in host order.
fn parse_endpoint(s: &str) -> Option<([u8; 16], u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_le_bytes())
    };
    let addr = match addr.len() {
        8 => ipv4_mapped(Ipv4Addr::from(word(0)?).octets()),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Ipv6Addr::from(b).octets()
        }
        _ => return None,
    };
    Some((addr, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream;

    #[test]
    fn tcp_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                  0: 0100007F:C350 0200000A:20FB 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n";
        let f = find_in_tcp_table(v4, 4242).unwrap();
        assert_eq!(
            upstream::label(f.client_addr, f.client_port),
            "127.0.0.1:50000"
        );
        assert_eq!(
            upstream::label(f.upstream_addr, f.upstream_port),
            "10.0.0.2:8443"
        );
        assert!(find_in_tcp_table(v4, 4243).is_none());
        let v6 = "header\n 0: 00000000000000000000000001000000:C350 0000000000000000FFFF00000200000A:01BB 01 0:0 0:0 0 0 0 77 1\n";
        let f = find_in_tcp_table(v6, 77).unwrap();
        assert_eq!(upstream::label(f.client_addr, f.client_port), "[::1]:50000");
        assert_eq!(
            upstream::label(f.upstream_addr, f.upstream_port),
            "10.0.0.2:443"
        );
    }

    #[test]
    fn libssl_names() {
        assert!(is_libssl(Path::new("/lib/x86_64-linux-gnu/libssl.so.3")));
        assert!(is_libssl(Path::new("/opt/x/libssl.so.1.1")));
        assert!(!is_libssl(Path::new("/lib/libcrypto.so.3")));
        assert!(!is_libssl(Path::new("/lib/x86_64-linux-gnu/libssl3.so")));
    }

    #[test]
    fn resolves_own_socket() {
        use std::os::fd::AsRawFd as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut r = SocketResolver::default();
        let f = r
            .resolve(std::process::id(), stream.as_raw_fd() as u32)
            .unwrap();
        assert_eq!(
            upstream::label(f.upstream_addr, f.upstream_port),
            listener.local_addr().unwrap().to_string()
        );
        assert_eq!(r.resolve(std::process::id(), NO_FD), None);
    }
}
