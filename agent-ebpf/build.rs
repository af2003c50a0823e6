//! Rebuild the eBPF object whenever the `bpf-linker` binary changes: building this crate
//! depends on it, and cargo has no way to declare that yet.
fn main() {
    if let Ok(bpf_linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", bpf_linker.display());
    }
}
