//! Running commands loudly: each is echoed before it runs, and a failure names it.

use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

/// Run `program args...` in the workspace root, inheriting stdio; fail if it fails.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    run_with(Command::new(program).args(args))
}

/// Run `cmd` (in the workspace root unless it names a directory), inheriting stdio.
pub fn run_with(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", describe(cmd));
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(crate::root());
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// `cargo args...` with the same cargo that runs xtask.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    run_with(Command::new(cargo_bin()).args(args))
}

pub fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Whether `cmd` exits 0, quietly (for probing what is installed).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Captured stdout of a command that must succeed.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}
