//! The input formats, a leaf every layer may name: readers ([`crate::formats`]) are
//! chosen by it and a [`crate::model::Report`] records which one it came from.

use serde::Serialize;

/// The input formats, as `--format` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// genai-bench experiment folder (run JSONs, experiment_metadata.json, genai_bench.log)
    GenaiBench,
    /// Locust `--csv` files (PREFIX_stats.csv, _failures.csv, _stats_history.csv)
    LocustCsv,
    /// Locust `--json-file`
    LocustJson,
    /// `vllm bench serve --save-result [--save-detailed]` result JSON
    Vllm,
    /// aiperf `profile_export.jsonl`
    Aiperf,
    /// guidellm `benchmarks.json`
    Guidellm,
    /// JSON Lines with the fields named by --field-time and --field-status
    Jsonl,
    /// Envoy access log, default format, and Plano's variant (`attempts=`)
    Envoy,
    /// nginx `combined`, optionally followed by `$upstream_addr` / `$upstream_status`
    Nginx,
    /// LiteLLM proxy output (uvicorn access lines)
    Litellm,
    /// Prometheus text: Envoy stats or LiteLLM metrics
    Prometheus,
}

impl Format {
    pub const ALL: [Format; 11] = [
        Format::GenaiBench,
        Format::LocustCsv,
        Format::LocustJson,
        Format::Vllm,
        Format::Aiperf,
        Format::Guidellm,
        Format::Jsonl,
        Format::Envoy,
        Format::Nginx,
        Format::Litellm,
        Format::Prometheus,
    ];

    /// The format `--format` calls `name`.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// One line on what the format is, for `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Format::GenaiBench => "genai-bench experiment folder (run JSONs, experiment_metadata.json, genai_bench.log)",
            Format::LocustCsv => "Locust `--csv` files (PREFIX_stats.csv, _failures.csv, _stats_history.csv)",
            Format::LocustJson => "Locust `--json-file`",
            Format::Vllm => "`vllm bench serve --save-result [--save-detailed]` result JSON",
            Format::Aiperf => "aiperf `profile_export.jsonl`",
            Format::Guidellm => "guidellm `benchmarks.json`",
            Format::Jsonl => "JSON Lines with the fields named by --field-time and --field-status",
            Format::Envoy => "Envoy access log, default format, and Plano's variant (`attempts=`)",
            Format::Nginx => "nginx `combined`, optionally followed by `$upstream_addr` / `$upstream_status`",
            Format::Litellm => "LiteLLM proxy output (uvicorn access lines)",
            Format::Prometheus => "Prometheus text: Envoy stats or LiteLLM metrics",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::GenaiBench => "genai-bench",
            Format::LocustCsv => "locust-csv",
            Format::LocustJson => "locust-json",
            Format::Vllm => "vllm",
            Format::Aiperf => "aiperf",
            Format::Guidellm => "guidellm",
            Format::Jsonl => "jsonl",
            Format::Envoy => "envoy",
            Format::Nginx => "nginx",
            Format::Litellm => "litellm",
            Format::Prometheus => "prometheus",
        }
    }
}
