//! The journal: what ratewire saw on the wire, one JSON line per event, in files that
//! `ratewire run` and `ratewire replay` write and `ratewire journal` and `ratewire audit`
//! read. The record schema is [`Record`]; it is versioned by [`SCHEMA_VERSION`].

pub mod record;

pub use record::{Kind, Record, SCHEMA_VERSION};
