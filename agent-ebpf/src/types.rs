//! `#[repr(C)]` types shared by the kernel programs and userspace. Every struct is laid
//! out with explicit fields and no implicit padding, so the bytes the kernel writes are
//! exactly the bytes userspace reads.

/// Key of the `RESPONSES` map: where a response came from and what it said.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseKey {
    /// Upstream (response source) address; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`).
    pub addr: [u8; 16],
    /// Upstream port, host byte order.
    pub port: u16,
    /// HTTP status code (100..=999).
    pub status: u16,
    /// Route id from the request (0 = unknown/not paired).
    pub route: u16,
    /// 1 when seen through the TLS uprobes, 0 on the wire.
    pub tls: u16,
}

/// Capacity of the `RESPONSES` map. Keys beyond it are not stored: each response that
/// cannot be counted is counted in `LOSSES[LOSS_RESPONSE_MAP_FULL]` instead.
pub const RESPONSES_MAX_ENTRIES: u32 = 16_384;

/// Index into the per-CPU `LOSSES` array: a response that found the `RESPONSES` map full.
pub const LOSS_RESPONSE_MAP_FULL: u32 = 0;
/// Number of slots in `LOSSES`.
pub const LOSS_SLOTS: u32 = 4;

/// Store an IPv4 address (network byte order octets) as IPv4-mapped IPv6.
#[inline(always)]
pub const fn ipv4_mapped(octets: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2], octets[3],
    ]
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain old data, #[repr(C)], no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::ResponseKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_key_has_no_padding() {
        assert_eq!(core::mem::size_of::<ResponseKey>(), 16 + 2 * 4);
        assert_eq!(core::mem::align_of::<ResponseKey>(), 2);
    }
}
