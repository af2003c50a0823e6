//! A lock shared by every test process on the machine, for tests that use global
//! kernel state (the XDP attachment of `lo`, or a running agent whose exact counts
//! must not be disturbed by another one). An flock(2) on a file works across threads
//! of one test binary and across concurrent `cargo test` runs alike, and the kernel
//! releases it if the holder crashes.

use std::fs::File;
use std::os::fd::AsRawFd;

use anyhow::{Context, Result};

/// Held until dropped (closing the file releases the lock).
pub struct GlobalLock {
    _file: File,
}

/// Block until the lock called `name` is ours.
pub fn exclusive(name: &str) -> Result<GlobalLock> {
    let path = std::env::temp_dir().join(format!("ratewire-tests-{name}.lock"));
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("locking {}", path.display()));
    }
    Ok(GlobalLock { _file: file })
}
