//! `ratewire`: count upstream HTTP status codes from the kernel, export them to
//! Prometheus, journal every response, and audit what other tools reported.

use std::process::ExitCode;

use clap::Parser as _;
use ratewire::{cli, daemon};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let result = match cli.command {
        cli::Command::Run(args) => daemon::run(args),
        cli::Command::Replay(args) => cli::replay::run(&args),
        cli::Command::Journal(args) => cli::journal::run(&args),
        cli::Command::Audit(args) => cli::audit::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line a person can act on: the context chain, outermost first.
            eprintln!("ratewire: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
