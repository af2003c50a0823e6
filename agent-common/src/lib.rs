//! What the kernel programs and userspace share: the `#[repr(C)]` map types and the
//! bounded HTTP/1.x head parser. One parser, two homes: the XDP program runs it on
//! live packets and `ratewire replay` runs it on captures, so they cannot disagree.
#![no_std]

pub mod http;
pub mod types;
