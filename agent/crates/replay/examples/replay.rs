//! `ratewire replay` without the daemon (the benchmark builds this in release):
//! `cargo run -p ratewire-replay --release --example replay -- FILE --output out.jsonl`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "replay",
    about = "Count upstream HTTP statuses in a pcap/pcapng capture"
)]
struct Cli {
    #[command(flatten)]
    args: ratewire_replay::ReplayArgs,
}

fn main() -> std::process::ExitCode {
    match ratewire_replay::run(&Cli::parse().args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
