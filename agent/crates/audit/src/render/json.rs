//! `--output json`: one JSON document, schema `ratewire.audit/v1`. Fields are only
//! added, never renamed or removed, within a schema version.
//!
//! ```text
//! {
//!   "schema": "ratewire.audit/v1",
//!   "exit_code": 0 | 1,
//!   "passed": bool,                      // discrepancies <= tolerance
//!   "discrepancies": u64,                // misreported + dropped + phantom
//!   "tolerance": u64,
//!   "totals": Verdicts,
//!   "wire": {
//!     "paths": [string], "records": u64, "responses": u64, "no_responses": u64,
//!     "events_lost": u64, "torn_lines": u64, "unusable_records": u64,
//!     "first": RFC3339 | null, "last": RFC3339 | null,
//!     "upstreams": { "ip:port": { "200": u64, "429": u64, "none": u64, ... } }
//!   },
//!   "sources": [{
//!     "path": string, "format": "genai-bench" | "locust-csv" | "locust-json" | "vllm"
//!       | "aiperf" | "guidellm" | "jsonl" | "envoy" | "nginx" | "litellm" | "prometheus",
//!     "role": "benchmark" | "gateway",
//!     "notes": [string],                 // facts the reader learned (scrubbed)
//!     "skipped_lines": u64,
//!     "problems": [string],              // "file:line: skipped: expected ..."
//!     "verdicts": Verdicts,
//!     "runs": [{
//!       "name": string,
//!       "grain": "request" | "second" | "run" | "counter",
//!       "window": [RFC3339, RFC3339] | null,  // on the wire's clock
//!       "clock": string,                 // how report times were aligned
//!       "upstreams": [string],
//!       "wire_events_lost": u64,         // agent losses inside the window
//!       "verdicts": Verdicts,
//!       "rows": [{ "upstream": string, "status": string, "class": Class,
//!                  "wire": u64, "reported": u64, "verdicts": Verdicts }],
//!       "findings": [{
//!         "verdict": Verdict, "count": u64, "upstream": string | null,
//!         "wire": string | null,         // "429", "none"; null: the wire carried nothing
//!         "reported": string | null,     // "500", "success", "failure", "none";
//!                                        // null: the report never mentions it
//!         "class": Class,
//!         "evidence": string,            // what the verdict rests on
//!         "examples": [{
//!           "wire": { "record": u64, "time": RFC3339, "upstream": string,
//!                     "client": string?, "status": string, "client_retry": u32? }?,
//!           "report": { "at": "file[:line]", "reported": string?, "message": string? }?,
//!           "detail": string?
//!         }]
//!       }]
//!     }]
//!   }]
//! }
//! Verdicts = { "consistent", "misreported", "dropped", "retry_absorbed", "phantom",
//!              "boundary": u64 }      (all six, always)
//! Verdict  = one of those six names
//! Class    = "ok" | "rate_limited" | "provider_unavailable" | "auth"
//!          | "model_not_found" | "client_error" | "no_response" | "other"
//! ```

use serde::Serialize;

use crate::reconcile::Audit;

pub const SCHEMA: &str = "ratewire.audit/v1";

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    exit_code: u8,
    #[serde(flatten)]
    audit: &'a Audit,
}

pub fn render(audit: &Audit) -> String {
    let doc = Document {
        schema: SCHEMA,
        exit_code: if audit.passed { 0 } else { 1 },
        audit,
    };
    let mut out = serde_json::to_string_pretty(&doc).expect("the audit serialises");
    out.push('\n');
    out
}
