//! One audit from paths: load the wire, read every report and gateway input, reconcile.
//! What `ratewire audit` runs; programs that already hold a [`Wire`] and [`Report`]s call
//! [`crate::reconcile::audit`] directly.

use std::path::PathBuf;

use crate::error::AuditError;
use crate::formats::{self, Format, ReadOptions};
use crate::model::{Report, Window};
use crate::reconcile::{audit, Audit, AuditOptions, Input, Role};
use crate::wire::Wire;

/// Which inputs to audit, and how.
#[derive(Clone, Debug, Default)]
pub struct AuditRequest {
    /// Journal files or data directories: the wire truth.
    pub wire: Vec<PathBuf>,
    /// Benchmark reports.
    pub reports: Vec<PathBuf>,
    /// Gateway logs and metrics snapshots.
    pub gateways: Vec<PathBuf>,
    /// Only these upstreams of the journal (`ip:port`; empty: all).
    pub upstreams: Vec<String>,
    /// Only wire responses (and reported requests with Unix times) in this window.
    pub window: Option<Window>,
    /// Read every input as this format instead of detecting it.
    pub format: Option<Format>,
    pub read: ReadOptions,
    pub options: AuditOptions,
}

/// Run the audit a request describes.
pub fn audit_inputs(request: &AuditRequest) -> Result<Audit, AuditError> {
    if request.reports.is_empty() && request.gateways.is_empty() {
        return Err(AuditError::NothingToAudit);
    }
    let wire = Wire::load(&request.wire, &request.upstreams, request.window)?;
    let mut inputs = Vec::new();
    for (paths, role) in [
        (&request.reports, Role::Benchmark),
        (&request.gateways, Role::Gateway),
    ] {
        for path in paths {
            let mut report = formats::read(path, request.format, &request.read)?;
            if let Some(window) = request.window {
                restrict_to_window(&mut report, window);
            }
            inputs.push(Input { report, role });
        }
    }
    Ok(audit(&wire, inputs, &request.options))
}

/// `--window` also limits reported requests that have Unix times.
fn restrict_to_window(report: &mut Report, window: Window) {
    for run in &mut report.runs {
        if run.unix_clock {
            run.requests
                .retain(|r| r.time.is_none_or(|t| window.contains(t.instant())));
        }
    }
}
