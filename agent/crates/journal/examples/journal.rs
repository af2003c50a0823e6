//! `ratewire journal` without the daemon: `cargo run -p ratewire-journal --example journal -- PATH ...`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "journal", about = "Query a ratewire journal")]
struct Cli {
    #[command(flatten)]
    args: ratewire_journal::QueryArgs,
}

fn main() -> std::process::ExitCode {
    match ratewire_journal::run(&Cli::parse().args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
