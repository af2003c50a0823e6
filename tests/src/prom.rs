//! A small, label-aware parser for the Prometheus text exposition format, so tests
//! assert on series (`name` + exact label set) rather than on substrings.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Has every `(name, value)` pair (and maybe more labels).
    pub fn matches(&self, labels: &[(&str, &str)]) -> bool {
        labels.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// All samples of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(text: &str) -> Result<Metrics> {
        let samples = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(n, line)| parse_line(line).with_context(|| format!("line {}: {line:?}", n + 1)))
            .collect::<Result<_>>()?;
        Ok(Metrics { samples })
    }

    /// Samples named `name` that carry all of `labels`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && s.matches(labels))
    }

    /// The value of the one sample named `name` with `labels`; None if there is none,
    /// an error if several match (the caller's labels were not specific enough).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Result<Option<f64>> {
        let mut found = self.select(name, labels);
        let first = found.next().map(|s| s.value);
        if found.next().is_some() {
            bail!("several {name} series match {labels:?}");
        }
        Ok(first)
    }

    /// `label` value → sample value over the samples `select(name, labels)` yields.
    pub fn by_label(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        label: &str,
    ) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for s in self.select(name, labels) {
            let key = s
                .label(label)
                .ok_or_else(|| anyhow!("{name} series without label {label:?}: {s:?}"))?;
            if out.insert(key.to_string(), s.value).is_some() {
                bail!("several {name} series with {label}={key:?} match {labels:?}");
            }
        }
        Ok(out)
    }
}

impl Metrics {
    /// Sum of the samples `select(name, labels)` yields (0 when there are none): a
    /// counter over the labels the caller does not care about (route, tls, ...).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.select(name, labels).map(|s| s.value).sum()
    }

    /// `label` value → sum of the samples with it among `select(name, labels)`: like
    /// [`Metrics::by_label`], but adding up series that differ only in other labels.
    pub fn sum_by(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        label: &str,
    ) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for s in self.select(name, labels) {
            let key = s
                .label(label)
                .ok_or_else(|| anyhow!("{name} series without label {label:?}: {s:?}"))?;
            *out.entry(key.to_string()).or_insert(0.0) += s.value;
        }
        Ok(out)
    }

    /// [`Metrics::sum_by`] of a counter, as whole numbers (an error if a sum is not).
    pub fn counts_by(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        label: &str,
    ) -> Result<BTreeMap<String, u64>> {
        self.sum_by(name, labels, label)?
            .into_iter()
            .map(|(k, v)| {
                if v < 0.0 || v.fract() != 0.0 {
                    bail!("{name}{{{label}={k:?}}} sums to {v}, not a count");
                }
                Ok((k, v as u64))
            })
            .collect()
    }
}

fn parse_line(line: &str) -> Result<Sample> {
    let line = line.trim();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        bail!("no metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("no value"))?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

/// Parse `a="x",b="y"}` into `labels`; the text after the closing brace.
fn parse_labels<'a>(mut s: &'a str, labels: &mut BTreeMap<String, String>) -> Result<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let (key, after) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("label without '='"))?;
        let mut chars = after
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| anyhow!("label {key} value not quoted"))?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => bail!("bad escape {other:?} in label {key}"),
                },
                Some((_, c)) => value.push(c),
                None => bail!("unterminated value of label {key}"),
            }
        };
        labels.insert(key.trim().to_string(), value);
        let quoted = after.trim_start().strip_prefix('"').expect("checked above");
        s = quoted[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn parse_value(s: &str) -> Result<f64> {
    Ok(match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse().with_context(|| format!("bad value {s:?}"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP ratewire_http_responses_total Responses seen.
# TYPE ratewire_http_responses_total counter
ratewire_http_responses_total{upstream="10.231.1.2:8000",status="200"} 6000
ratewire_http_responses_total{status="429",upstream="10.231.1.2:8000"} 2000 1700000000000
ratewire_http_responses_total{upstream="[fd00:231:1::2]:8000",status="429",} 3
ratewire_probe_attached{iface="rwt1h",mode="native"} 1
ratewire_map_overflow_total 0
odd{v="a \"quoted\" \\ back\nslash, {braces}"} +Inf
"#;

    #[test]
    fn parses_labels_values_and_escapes() {
        let m = Metrics::parse(TEXT).unwrap();
        assert_eq!(m.samples.len(), 6);
        let v4 = [("upstream", "10.231.1.2:8000")];
        let by_status = m
            .by_label("ratewire_http_responses_total", &v4, "status")
            .unwrap();
        assert_eq!(
            by_status,
            [("200".into(), 6000.0), ("429".into(), 2000.0)].into()
        );
        let v6 = [("upstream", "[fd00:231:1::2]:8000"), ("status", "429")];
        assert_eq!(
            m.value("ratewire_http_responses_total", &v6).unwrap(),
            Some(3.0)
        );
        assert_eq!(
            m.value("ratewire_map_overflow_total", &[]).unwrap(),
            Some(0.0)
        );
        let odd = m.select("odd", &[]).next().unwrap();
        assert_eq!(
            odd.label("v"),
            Some("a \"quoted\" \\ back\nslash, {braces}")
        );
        assert_eq!(odd.value, f64::INFINITY);
    }

    #[test]
    fn sums_over_other_labels() {
        let text = "r{upstream=\"u\",route=\"a\",status=\"200\"} 2\n\
                    r{upstream=\"u\",route=\"b\",status=\"200\"} 3\n\
                    r{upstream=\"u\",route=\"a\",status=\"429\"} 1\n\
                    r{upstream=\"v\",route=\"a\",status=\"429\"} 7\n";
        let m = Metrics::parse(text).unwrap();
        let u = [("upstream", "u")];
        assert_eq!(
            m.sum_by("r", &u, "status").unwrap(),
            [("200".into(), 5.0), ("429".into(), 1.0)].into()
        );
        assert_eq!(m.sum("r", &u), 6.0);
        assert_eq!(m.sum("missing", &[]), 0.0);
        assert!(m.by_label("r", &u, "status").is_err());
    }

    #[test]
    fn ambiguous_or_broken_input_is_an_error() {
        let m = Metrics::parse(TEXT).unwrap();
        assert!(m.value("ratewire_http_responses_total", &[]).is_err());
        assert!(Metrics::parse("x{a=\"1\" 2").is_err());
        assert!(Metrics::parse("x{a=1} 2").is_err());
        assert!(Metrics::parse("x one").is_err());
    }
}
