//! `ratewire audit` without the rest of the `ratewire` binary (handy while developing):
//! `cargo run -p ratewire-audit --example audit -- --wire W --report R`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "ratewire-audit")]
struct Cli {
    #[command(flatten)]
    args: ratewire_audit::AuditArgs,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    ratewire_audit::run(&Cli::parse().args)
}
