//! `ratewire-mock`: a scripted OpenAI-style upstream. Every request, on any path and
//! any connection, takes the next step of one global plan, so N requests produce
//! known totals; the mock also tallies what it really sent, and that tally is the
//! ground truth the agent's counters are checked against.

pub mod counts;
pub mod plan;
pub mod response;
mod server;

pub use server::{serve, Mock, MockConfig};
