//! `ratewire audit`: which 429s did a benchmark report or a gateway log get wrong?
//!
//! The wire journal (`ratewire run` / `ratewire replay`) is the truth: every response
//! status that crossed the wire, per upstream. The audit reads benchmark reports and
//! gateway logs and metrics ([`formats`], one module per format), turns them into one
//! model ([`model`]), reconciles them with the wire per upstream, status and request
//! ([`reconcile`]) and gives every difference exactly one [`verdict::Verdict`], with the
//! evidence it rests on ([`render`]: table, JSON, Markdown).
//!
//! ```text
//! formats::* ──► model::Report ─┐
//!                                ├─► reconcile::audit ──► Audit ──► render::{table,json,markdown}
//! journal ─────► wire::Wire ─────┘
//! ```
//!
//! Library entry points: [`audit_inputs`] with an [`AuditRequest`] (what `ratewire audit`
//! runs); [`formats::read`], [`wire::Wire::load`] and [`reconcile::audit`] for
//! programs; [`formats::envoy::tally_statuses`] for the streaming Envoy count path.
//! Anything echoed from an input is scrubbed of secrets ([`scrub`]).

pub mod error;
pub mod format;
pub mod formats;
pub mod model;
pub mod reconcile;
pub mod render;
pub mod request;
pub mod scrub;
pub mod timefmt;
pub mod verdict;
pub mod wire;

pub use error::AuditError;
pub use reconcile::{audit, Audit, AuditOptions, Input, Role};
pub use request::{audit_inputs, AuditRequest};
pub use verdict::{FailureClass, Verdict};
