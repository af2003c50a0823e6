//! `ratewire run`: attach, serve metrics, record events, wait for a signal, detach.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use log::{info, warn};
use ratewire_journal::writer::{JournalWriter, WriterConfig};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::watch,
};

use crate::{
    cli::{RunArgs, TlsMode},
    exporter,
    metrics::Metrics,
    netif,
    probe::{Probe, ProbeConfig},
    recorder::{Recorder, TlsState},
    routes::RouteTable,
    tls,
};

/// How often `--tls auto` looks for libssl copies newly mapped by running processes.
const TLS_RESCAN: Duration = Duration::from_secs(3);

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
        args.ifaces.clone()
    };
    for iface in &ifaces {
        netif::ensure_exists(iface)?;
    }
    let routes = RouteTable::new(&args.routes)?;
    let journal = open_journal(&args)?;
    // Bind before attaching, so a busy port costs no attach/detach cycle.
    let listener = exporter::bind(args.listen).await?;

    let mut probe = Probe::attach(&ProbeConfig {
        ifaces: &ifaces,
        routes: &routes,
        events_buffer_bytes: args.events_buffer_bytes,
        tls: args.tls != TlsMode::Off,
    })?;
    let counters = Arc::new(Mutex::new(probe.take_counters()?));
    let metrics = Arc::new(Metrics::new(
        counters.clone(),
        routes.clone(),
        &probe.attachments,
    )?);
    let mut recorder = Recorder::new(
        probe.take_events()?,
        probe.take_flows()?,
        counters,
        metrics.clone(),
        routes,
        journal,
        Duration::from_secs_f64(args.response_timeout),
    )?;
    if args.tls != TlsMode::Off {
        let (flows, fds, hellos) = probe.take_tls_maps()?;
        recorder = recorder.with_tls(TlsState {
            flows,
            fds,
            resolver: Default::default(),
            hellos,
            attributed: Default::default(),
        });
        attach_tls_libs(&mut probe, &metrics, &args.tls_libs, true);
    }
    let mut rescan = tokio::time::interval(TLS_RESCAN);
    let (stop, stopped) = watch::channel(false);
    let mut recording = tokio::spawn(recorder.run(stopped));
    let server = tokio::spawn(exporter::serve(listener, metrics.clone()));

    // A recorder that fails (e.g. the journal's disk is full) stops the daemon loudly
    // rather than letting it run on with a journal that silently misses records.
    let signal_name = wait_for_signal();
    tokio::pin!(signal_name);
    loop {
        tokio::select! {
            signal_name = &mut signal_name => {
                info!("{}: stopping", signal_name?);
                break;
            }
            ended = &mut recording => {
                server.abort();
                drop(probe);
                ended.context("the recorder task panicked")??;
                anyhow::bail!("the recorder stopped unexpectedly");
            }
            _ = rescan.tick(), if args.tls == TlsMode::Auto => {
                attach_tls_libs(&mut probe, &metrics, &[], false);
            }
        }
    }
    server.abort();
    let _ = stop.send(true);
    recording.await.context("the recorder task panicked")??;
    drop(probe);
    info!("detached from {} interface(s)", ifaces.len());
    Ok(ExitCode::SUCCESS)
}

/// Attach the TLS uprobes to the libraries given, and (`--tls auto`) to the system's
/// libssl and every libssl a running process maps; each file once.
fn attach_tls_libs(probe: &mut Probe, metrics: &Metrics, extra: &[PathBuf], first: bool) {
    let mut libs: BTreeSet<PathBuf> = extra.iter().cloned().collect();
    if first {
        libs.extend(tls::system_libs());
    }
    libs.extend(tls::mapped_libs());
    for lib in extra {
        if tls::file_id(lib).is_none() {
            warn!("TLS: --tls-lib {}: no such file", lib.display());
        }
    }
    for lib in libs {
        let results = probe.attach_tls_lib(&lib);
        let failed: Vec<String> = results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.function)))
            .collect();
        for r in &results {
            metrics
                .tls_attached
                .with_label_values(&[r.lib.as_str(), r.function])
                .set(i64::from(r.error.is_none()));
        }
        if results.is_empty() {
            continue;
        }
        if failed.is_empty() {
            info!("TLS: uprobes attached to {}", lib.display());
        } else {
            warn!(
                "TLS: {}: {} of {} functions not attached ({})",
                lib.display(),
                failed.len(),
                results.len(),
                failed.join("; ")
            );
        }
    }
}

fn open_journal(args: &RunArgs) -> anyhow::Result<Option<JournalWriter>> {
    if args.no_journal {
        return Ok(None);
    }
    let mut config = WriterConfig::new(&args.data_dir);
    config.max_file_bytes = args.journal_max_file_mib.max(1) << 20;
    config.max_files = Some(args.journal_max_files.max(1));
    config.max_age = args
        .journal_max_age_hours
        .map(|h| Duration::from_secs(h * 3600));
    let writer = JournalWriter::open(config)
        .with_context(|| format!("opening the journal in {}", args.data_dir.display()))?;
    info!("journal in {}", args.data_dir.display());
    Ok(Some(writer))
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}
