//! Empty on purpose: the kernel programs are this crate's binary (`src/main.rs`, built for
//! bpfel-unknown-none by `agent/build.rs`). A library target lets the agent name this crate
//! as a build-dependency, so cargo rebuilds the agent when a program changes (the
//! aya-template layout); what kernel and userspace share lives in `ratewire-common`.
#![no_std]
