//! `ratewire run`: attach, serve metrics, wait for a signal, detach.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context as _;
use log::info;
use tokio::signal::unix::{signal, SignalKind};

use crate::{cli::RunArgs, exporter, metrics::Metrics, netif, probe::Probe};

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<ExitCode> {
    let ifaces = if args.ifaces.is_empty() {
        netif::default_ifaces()?
    } else {
        args.ifaces
    };
    // Bind before attaching, so a busy port costs no attach/detach cycle.
    let listener = exporter::bind(args.listen).await?;
    let mut probe = Probe::attach(&ifaces)?;
    let metrics = Arc::new(Metrics::new(probe.take_counters()?, &probe.attachments)?);
    let server = tokio::spawn(exporter::serve(listener, metrics));

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let signal_name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    server.abort();
    drop(probe);
    info!("{signal_name}: detached from {} interface(s)", ifaces.len());
    Ok(ExitCode::SUCCESS)
}
