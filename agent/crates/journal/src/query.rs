//! Selecting and aggregating records: the logic behind `ratewire journal`, kept apart
//! from argument parsing and printing so it can be tested and reused.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::record::{Kind, Record};

/// A `--status` value: one code (`429`), a class (`4xx`) or `no_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Code(u16),
    /// First digit of the class: 4 for `4xx`.
    Class(u8),
    NoResponse,
}

impl StatusFilter {
    fn matches(self, record: &Record) -> bool {
        match (self, record.kind, record.status) {
            (StatusFilter::Code(code), Kind::Response, Some(status)) => status == code,
            (StatusFilter::Class(class), Kind::Response, Some(status)) => {
                status / 100 == u16::from(class)
            }
            (StatusFilter::NoResponse, Kind::NoResponse, _) => true,
            _ => false,
        }
    }
}

impl FromStr for StatusFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let valid_first = |c: u8| (b'1'..=b'9').contains(&c);
        match b {
            _ if s == "no_response" => Ok(StatusFilter::NoResponse),
            [c, b'x' | b'X', b'x' | b'X'] if valid_first(*c) => Ok(StatusFilter::Class(c - b'0')),
            [c, d, e] if valid_first(*c) && d.is_ascii_digit() && e.is_ascii_digit() => {
                Ok(StatusFilter::Code(s.parse().expect("three digits")))
            }
            _ => Err(format!(
                "'{s}' is not a status: expected a code (429), a class (4xx) or no_response"
            )),
        }
    }
}

/// An `--upstream` value: an `ADDR:PORT`, compared as an address (IPv4-mapped IPv6 and
/// plain IPv4 are the same upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamFilter(SocketAddr);

impl UpstreamFilter {
    fn matches(self, upstream: &str) -> bool {
        upstream
            .parse::<SocketAddr>()
            .is_ok_and(|addr| canonical(addr) == canonical(self.0))
    }
}

fn canonical(addr: SocketAddr) -> (std::net::IpAddr, u16) {
    (addr.ip().to_canonical(), addr.port())
}

impl FromStr for UpstreamFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(UpstreamFilter).map_err(|_| {
            format!("'{s}' is not an upstream: expected ADDR:PORT (10.0.0.2:8000, [::1]:8000)")
        })
    }
}

/// Which records to show. Time bounds are half-open, `[since, until)`, in Unix ns. Gap
/// records pass every filter but the time bounds: a gap means records of any upstream
/// and status may be missing there.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    /// Any of these (none = all).
    pub upstreams: Vec<UpstreamFilter>,
    pub statuses: Vec<StatusFilter>,
    pub routes: Vec<String>,
}

impl Selection {
    pub fn matches(&self, record: &Record) -> bool {
        if self.since_ns.is_some_and(|t| record.unix_ns < t)
            || self.until_ns.is_some_and(|t| record.unix_ns >= t)
        {
            return false;
        }
        if record.kind == Kind::Gap {
            return true;
        }
        let upstream_ok = self.upstreams.is_empty()
            || record
                .upstream
                .as_deref()
                .is_some_and(|u| self.upstreams.iter().any(|f| f.matches(u)));
        let status_ok = self.statuses.is_empty() || self.statuses.iter().any(|f| f.matches(record));
        let route_ok = self.routes.is_empty()
            || record
                .route
                .as_deref()
                .is_some_and(|r| self.routes.iter().any(|f| f == r));
        upstream_ok && status_ok && route_ok
    }
}

/// What a per-second row counts: a status code, a no-response reason, or lost events.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Status(u16),
    NoResponse(String),
    Gap,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status(code) => write!(f, "{code}"),
            Outcome::NoResponse(reason) => write!(f, "no_response:{reason}"),
            Outcome::Gap => f.write_str("gap"),
        }
    }
}

/// One `--per-second` row: how many records of `outcome` from `upstream` fell into the
/// whole Unix second `second` (for gaps, how many events were lost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondCount {
    pub second: u64,
    /// `-` for gaps and records without an upstream.
    pub upstream: String,
    pub outcome: Outcome,
    pub count: u64,
}

/// Counts per (second, upstream, outcome), sorted by those keys. This is the shape that
/// tools logging whole seconds (Locust, gateway access logs) can be compared with.
pub fn per_second<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<SecondCount> {
    let mut counts: BTreeMap<(u64, String, Outcome), u64> = BTreeMap::new();
    for record in records {
        let outcome = match record.kind {
            Kind::Response => match record.status {
                Some(code) => Outcome::Status(code),
                None => continue, // malformed; never invent a status
            },
            Kind::NoResponse => {
                Outcome::NoResponse(record.reason.clone().unwrap_or_else(|| "unknown".into()))
            }
            Kind::Gap => Outcome::Gap,
        };
        let upstream = record.upstream.clone().unwrap_or_else(|| "-".into());
        let add = if record.kind == Kind::Gap {
            record.lost.unwrap_or(0)
        } else {
            1
        };
        *counts
            .entry((record.unix_ns / 1_000_000_000, upstream, outcome))
            .or_default() += add;
    }
    counts
        .into_iter()
        .map(|((second, upstream, outcome), count)| SecondCount {
            second,
            upstream,
            outcome,
            count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoResponseReason;

    const S: u64 = 1_000_000_000;

    fn resp(ns: u64, upstream: &str, status: u16, route: &str) -> Record {
        Record {
            route: Some(route.into()),
            ..Record::response(ns, upstream.into(), status, "xdp")
        }
    }

    #[test]
    fn parses_status_filters() {
        assert_eq!("429".parse(), Ok(StatusFilter::Code(429)));
        assert_eq!("4xx".parse(), Ok(StatusFilter::Class(4)));
        assert_eq!("5XX".parse(), Ok(StatusFilter::Class(5)));
        assert_eq!("no_response".parse(), Ok(StatusFilter::NoResponse));
        for bad in ["", "42", "4290", "0xx", "099", "abc", "4x"] {
            assert!(bad.parse::<StatusFilter>().is_err(), "{bad}");
        }
    }

    #[test]
    fn selects_by_time_upstream_status_and_route() {
        let records = [
            resp(S, "10.0.0.2:8000", 200, "/v1/chat/completions"),
            resp(2 * S, "10.0.0.2:8000", 429, "/v1/chat/completions"),
            resp(2 * S + 1, "10.0.0.3:8000", 503, "/v1/embeddings"),
            resp(3 * S, "[::ffff:10.0.0.2]:8000", 429, "/v1/embeddings"),
            Record::no_response(
                3 * S,
                "10.0.0.2:8000".into(),
                NoResponseReason::Closed,
                "xdp",
            ),
            Record::gap(3 * S, 4, "xdp"),
        ];
        let pick = |sel: &Selection| -> Vec<usize> {
            (0..records.len())
                .filter(|&i| sel.matches(&records[i]))
                .collect()
        };
        let mut sel = Selection {
            since_ns: Some(2 * S),
            until_ns: Some(3 * S),
            ..Selection::default()
        };
        assert_eq!(pick(&sel), vec![1, 2]);
        sel = Selection {
            upstreams: vec!["10.0.0.2:8000".parse().unwrap()],
            ..Selection::default()
        };
        assert_eq!(pick(&sel), vec![0, 1, 3, 4, 5]);
        sel.statuses = vec![StatusFilter::Class(4), StatusFilter::NoResponse];
        assert_eq!(pick(&sel), vec![1, 3, 4, 5]);
        sel.routes = vec!["/v1/embeddings".into()];
        assert_eq!(pick(&sel), vec![3, 5], "gaps always show");
    }

    #[test]
    fn counts_per_second_upstream_and_outcome() {
        let records = [
            resp(S, "10.0.0.2:8000", 429, "other"),
            resp(S + S / 2, "10.0.0.2:8000", 429, "other"),
            resp(S + 1, "10.0.0.2:8000", 200, "other"),
            resp(2 * S, "10.0.0.2:8000", 429, "other"),
            Record::no_response(
                2 * S,
                "10.0.0.2:8000".into(),
                NoResponseReason::Reset,
                "xdp",
            ),
            Record::gap(2 * S, 7, "xdp"),
        ];
        let rows: Vec<String> = per_second(&records)
            .iter()
            .map(|r| format!("{} {} {} {}", r.second, r.upstream, r.outcome, r.count))
            .collect();
        assert_eq!(
            rows,
            [
                "1 10.0.0.2:8000 200 1",
                "1 10.0.0.2:8000 429 2",
                "2 - gap 7",
                "2 10.0.0.2:8000 429 1",
                "2 10.0.0.2:8000 no_response:reset 1",
            ]
        );
    }
}
