//! End-to-end test support for ratewire: a netns testbed, a scripted mock LLM
//! upstream (`ratewire-mock`), a bounded load client (`ratewire-load`), and helpers
//! to run the real agent and read its metrics. The suites are in `tests/`.

pub mod agent;
pub mod bins;
pub mod cmd;
pub mod http;
pub mod inspect;
pub mod journal;
pub mod load;
pub mod lock;
pub mod mock;
pub mod netns;
pub mod proc;
pub mod prom;
pub mod run;
pub mod tmp;
