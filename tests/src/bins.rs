//! Where the binaries under test are. Integration tests run from
//! `target/<profile>/deps/`, and cargo puts the workspace's binaries (this package's
//! `ratewire-mock`/`ratewire-load` and, once built, the agent) one level up.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running test binary")?;
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .with_context(|| format!("{} is not inside target/<profile>/deps", exe.display()))
}

fn built(name: &str, how: &str) -> Result<PathBuf> {
    let path = profile_dir()?.join(name);
    if !path.is_file() {
        bail!("{} not found: {how}", path.display());
    }
    Ok(path)
}

pub fn mock() -> Result<PathBuf> {
    built("ratewire-mock", "run `cargo build -p ratewire-tests`")
}

pub fn load() -> Result<PathBuf> {
    built("ratewire-load", "run `cargo build -p ratewire-tests`")
}

/// The agent: `$RATEWIRE_BIN`, else `ratewire` beside this package's binaries
/// (`<workspace>/target/debug/ratewire` in a default debug build).
pub fn agent() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("RATEWIRE_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("RATEWIRE_BIN={} is not a file", path.display());
        }
        return Ok(path);
    }
    built(
        "ratewire",
        "the agent is not built; run `cargo build -p ratewire` (or set RATEWIRE_BIN)",
    )
}
