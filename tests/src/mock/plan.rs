//! The mock's scripted plan: which outcome the n-th request (counted across all
//! connections) gets. A fixed cycle makes the totals for N requests deterministic.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, ensure, Context, Result};

/// What the mock does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// A complete response with this status.
    Status(u16),
    /// Read the request, then abort the connection with RST (SO_LINGER 0).
    Reset,
    /// Read the request, then close with FIN and no response.
    Close,
    /// Read the request, never answer; wait until the peer closes.
    Stall,
    /// A 200 whose head is flushed first and whose body, sent after a pause as its
    /// own segment, starts with `HTTP/1.1 429 Too Many Requests\r\n`: a trap for
    /// probes that take any segment starting with a status line for a response.
    Split429,
}

impl fmt::Display for Step {
    /// The step's name in the plan, which is also its key in the counts report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Status(code) => write!(f, "{code}"),
            Step::Reset => f.write_str("reset"),
            Step::Close => f.write_str("close"),
            Step::Stall => f.write_str("stall"),
            Step::Split429 => f.write_str("split429"),
        }
    }
}

impl FromStr for Step {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "reset" => Step::Reset,
            "close" => Step::Close,
            "stall" => Step::Stall,
            "split429" => Step::Split429,
            code => {
                let code: u16 = code
                    .parse()
                    .with_context(|| format!("unknown plan step {code:?}"))?;
                ensure!(
                    (200..=599).contains(&code),
                    "status {code} is outside 200..=599"
                );
                Step::Status(code)
            }
        })
    }
}

/// The expanded cycle of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan(Vec<Step>);

impl Plan {
    /// The step for the `n`-th request (0-based), cycling through the plan.
    pub fn step(&self, n: u64) -> Step {
        self.0[(n % self.0.len() as u64) as usize]
    }
}

impl FromStr for Plan {
    type Err = anyhow::Error;

    /// `200x6,429x2,500,reset`: comma-separated steps, each optionally `xCOUNT`.
    fn from_str(s: &str) -> Result<Self> {
        let mut steps = Vec::new();
        for item in s.split(',').map(str::trim) {
            let (step, count) = match item.rsplit_once('x') {
                Some((step, count)) => (
                    step,
                    count
                        .parse::<usize>()
                        .with_context(|| format!("bad repeat count in plan item {item:?}"))?,
                ),
                None => (item, 1),
            };
            ensure!(count > 0, "plan item {item:?} repeats zero times");
            let step: Step = step
                .parse()
                .with_context(|| format!("in plan item {item:?}"))?;
            steps.extend(std::iter::repeat_n(step, count));
        }
        if steps.is_empty() {
            bail!("plan {s:?} has no steps");
        }
        Ok(Plan(steps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_cycles() {
        let plan: Plan = "200x2,429,reset,split429x1".parse().unwrap();
        let got: Vec<String> = (0..6).map(|n| plan.step(n).to_string()).collect();
        assert_eq!(got, ["200", "200", "429", "reset", "split429", "200"]);
    }

    #[test]
    fn rejects_garbage() {
        assert!("".parse::<Plan>().is_err());
        assert!("200x0".parse::<Plan>().is_err());
        assert!("teapot".parse::<Plan>().is_err());
        assert!("200xy".parse::<Plan>().is_err());
        assert!("99".parse::<Plan>().is_err());
    }
}
