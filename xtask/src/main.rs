//! `cargo xtask`: the project's own build tool. `setup` installs what a fresh machine
//! lacks; `run`, `test` and `bench` call it first, so the README's commands are all a
//! new machine needs.

mod bench;
mod bench_replay;
mod layout;
mod setup;
mod sh;
mod test;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "ratewire's build, test and bench tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: nightly rust-src, LLVM 22, bpf-linker, Debian test tools.
    Setup,
    /// Build (debug) everything, the eBPF object included.
    Build,
    /// Build and run `ratewire ARGS...` (e.g. `cargo xtask run -- run --iface lo`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// fmt, clippy -D warnings (userspace and eBPF), unit tests, privileged end-to-end tests.
    Test {
        /// Only run tests whose name contains this filter (fmt and clippy still run).
        filter: Option<String>,
    },
    /// Check the house rules: CLI-free libraries, no module cycles, no oversized file.
    Layout,
    /// Run a benchmark and print its figures as ratios to a baseline from the same run.
    Bench {
        #[arg(value_enum)]
        which: bench::Which,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(),
        Task::Build => setup::run().and_then(|()| build()),
        Task::Run { args } => setup::run().and_then(|()| run(&args)),
        Task::Test { filter } => setup::run().and_then(|()| test::run(filter.as_deref())),
        Task::Layout => layout::run(),
        Task::Bench { which } => setup::run().and_then(|()| bench::run(which)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

fn build() -> anyhow::Result<()> {
    sh::cargo(&["build", "--workspace", "--bins"])
}

fn run(args: &[String]) -> anyhow::Result<()> {
    sh::cargo(&["build", "--package", "ratewire"])?;
    let bin = root().join("target/debug/ratewire");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sh::run(bin.to_str().unwrap_or("ratewire"), &args)
}
