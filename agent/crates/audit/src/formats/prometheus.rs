//! Prometheus text snapshots of a gateway's counters, and Envoy's `/stats` text.
//!
//! LiteLLM: `litellm_deployment_failure_responses_total{api_base,exception_status}`,
//! `litellm_deployment_success_responses_total{api_base}`,
//! `litellm_deployment_total_requests_total{api_base}` (the upstream leg, per
//! deployment) and `litellm_proxy_total_requests_metric_total{status_code,route}` (the
//! client leg). Envoy: `envoy_cluster_upstream_rq{envoy_response_code,envoy_cluster_name}`,
//! `envoy_cluster_upstream_rq_xx{envoy_response_code_class}`,
//! `envoy_cluster_upstream_rq_retry`, and the `/stats` form
//! `cluster.NAME.upstream_rq_429: N`. Counters are cumulative since the gateway
//! started: compare them with a journal covering the same span.

use std::collections::BTreeMap;
use std::path::Path;

use super::{upstream_of_url, Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{CounterKind, CounterSample, Leg, Location, Report};

pub struct PrometheusReader;

/// `name{a="1",b="x"} 12.0` → (name, labels, value).
pub fn parse_sample(line: &str) -> Result<(&str, BTreeMap<&str, String>, f64), &'static str> {
    let (series, rest) = match line.find('{') {
        Some(_) => {
            let close = line.rfind('}').ok_or("`}` closing the labels")?;
            (&line[..close + 1], &line[close + 1..])
        }
        None => line.split_once(' ').ok_or("`name value`")?,
    };
    let value: f64 = rest
        .split_whitespace()
        .next()
        .ok_or("a sample value")?
        .parse()
        .map_err(|_| "a numeric sample value")?;
    let (name, labels) = match series.split_once('{') {
        Some((name, body)) => (name, parse_labels(body.trim_end_matches('}'))?),
        None => (series, BTreeMap::new()),
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    {
        return Err("a metric name");
    }
    Ok((name, labels, value))
}

fn parse_labels(mut body: &str) -> Result<BTreeMap<&str, String>, &'static str> {
    let mut labels = BTreeMap::new();
    loop {
        body = body.trim_start_matches([',', ' ']);
        if body.is_empty() {
            return Ok(labels);
        }
        let (key, rest) = body.split_once("=\"").ok_or("labels as key=\"value\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("a label value"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("`\"` closing a label value"),
            }
        };
        labels.insert(key.trim(), value);
        body = &rest[end + 1..];
    }
}

fn status_label(v: Option<&String>) -> Option<u16> {
    v.and_then(|s| s.parse::<u16>().ok())
        .filter(|c| (100..=599).contains(c))
}

/// The counter a LiteLLM or Envoy Prometheus sample stands for, if it is one we compare.
fn classify(name: &str, labels: &BTreeMap<&str, String>) -> Option<(Leg, CounterKind)> {
    let deployment = || {
        labels.get("api_base").map(|b| {
            upstream_of_url(b)
                .map(Leg::Upstream)
                .unwrap_or_else(|| Leg::Cluster(b.clone()))
        })
    };
    let cluster = || {
        labels
            .get("envoy_cluster_name")
            .map(|c| Leg::Cluster(c.clone()))
    };
    match name {
        "litellm_deployment_failure_responses_total" => Some((
            deployment()?,
            status_label(labels.get("exception_status"))
                .map(CounterKind::Status)
                .unwrap_or(CounterKind::Failure),
        )),
        "litellm_deployment_success_responses_total" => Some((deployment()?, CounterKind::Success)),
        "litellm_deployment_total_requests_total" => Some((deployment()?, CounterKind::Total)),
        "litellm_proxy_total_requests_metric_total" => Some((
            Leg::Downstream,
            CounterKind::Status(status_label(labels.get("status_code"))?),
        )),
        "envoy_cluster_upstream_rq" | "envoy_cluster_upstream_rq_total"
            if labels.contains_key("envoy_response_code") =>
        {
            Some((
                cluster()?,
                CounterKind::Status(status_label(labels.get("envoy_response_code"))?),
            ))
        }
        "envoy_cluster_upstream_rq_xx" => {
            let class = labels
                .get("envoy_response_code_class")?
                .parse::<u8>()
                .ok()?;
            Some((cluster()?, CounterKind::Class(class)))
        }
        "envoy_cluster_upstream_rq_retry" => Some((cluster()?, CounterKind::Retries)),
        "envoy_cluster_upstream_rq_total" => Some((cluster()?, CounterKind::Total)),
        _ => None,
    }
}

/// Envoy `/stats` text: `cluster.NAME.upstream_rq_429: 5`.
fn classify_envoy_stat(line: &str) -> Option<Result<(Leg, CounterKind, u64), &'static str>> {
    let rest = line.strip_prefix("cluster.")?;
    let (stat, value) = rest.split_once(": ")?;
    let (cluster, counter) = stat.rsplit_once('.')?;
    let counter = counter.strip_prefix("upstream_rq_")?;
    let Ok(value) = value.trim().parse::<u64>() else {
        return Some(Err("an integer counter value"));
    };
    let kind = match counter {
        "retry" => CounterKind::Retries,
        "total" => CounterKind::Total,
        c if c.len() == 3 && c.ends_with("xx") => CounterKind::Class(c[..1].parse().ok()?),
        c => CounterKind::Status(c.parse::<u16>().ok().filter(|s| (100..=599).contains(s))?),
    };
    Some(Ok((Leg::Cluster(cluster.to_owned()), kind, value)))
}

impl ReportReader for PrometheusReader {
    fn format(&self) -> Format {
        Format::Prometheus
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let h = probe.head;
        if h.starts_with("# HELP") || h.starts_with("# TYPE") {
            return 90;
        }
        let first = h.lines().next().unwrap_or("");
        if classify_envoy_stat(first).is_some()
            || (parse_sample(first).is_ok()
                && (first.starts_with("litellm_") || first.starts_with("envoy_")))
        {
            90
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let mut report = Report::new(path, Format::Prometheus);
        let mut samples = 0u64;
        super::for_each_line(path, |line_no, line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return;
            }
            let at = Location::new(path, Some(line_no));
            if let Some(stat) = classify_envoy_stat(line) {
                match stat {
                    Ok((leg, kind, value)) => report.counters.push(CounterSample {
                        at,
                        metric: line.split(':').next().unwrap_or("").to_owned(),
                        leg,
                        kind,
                        route: None,
                        value,
                    }),
                    Err(expected) => report.problems.skip(at, expected),
                }
                return;
            }
            match parse_sample(line) {
                Err(expected) => report.problems.skip(at, expected),
                Ok((name, labels, value)) => {
                    samples += 1;
                    if let Some((leg, kind)) = classify(name, &labels) {
                        report.counters.push(CounterSample {
                            at,
                            metric: name.to_owned(),
                            leg,
                            kind,
                            route: labels.get("route").cloned(),
                            value: value.max(0.0).round() as u64,
                        });
                    }
                }
            }
        })?;
        if report.counters.is_empty() {
            return Err(AuditError::invalid(
                path,
                None,
                format!("{samples} sample(s), none of the LiteLLM or Envoy request counters the audit compares"),
            ));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_labels() {
        let (name, labels, value) = parse_sample(r#"litellm_deployment_failure_responses_total{api_base="http://127.0.0.1:9121/v1",exception_status="429",x="a\"b"} 11.0"#).unwrap();
        assert_eq!(name, "litellm_deployment_failure_responses_total");
        assert_eq!(labels["exception_status"], "429");
        assert_eq!(labels["x"], "a\"b");
        assert_eq!(value, 11.0);
        assert_eq!(
            classify(name, &labels),
            Some((
                Leg::Upstream("127.0.0.1:9121".into()),
                CounterKind::Status(429)
            ))
        );
        assert!(parse_sample("no_value").is_err());
    }

    #[test]
    fn envoy_stats_text() {
        assert_eq!(
            classify_envoy_stat("cluster.openai.upstream_rq_429: 7"),
            Some(Ok((
                Leg::Cluster("openai".into()),
                CounterKind::Status(429),
                7
            )))
        );
        assert_eq!(
            classify_envoy_stat("cluster.openai.upstream_rq_4xx: 9"),
            Some(Ok((
                Leg::Cluster("openai".into()),
                CounterKind::Class(4),
                9
            )))
        );
        assert_eq!(
            classify_envoy_stat("cluster.openai.upstream_cx_total: 9"),
            None
        );
    }
}
