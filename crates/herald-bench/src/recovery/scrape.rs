//! A Herald node's `/metrics` (docs/admin.md), read for the counters a recovery run reports:
//! store calls by method (`herald_store_operation_duration_seconds_count{op}`) and logins.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Counters of one node (or the sum over nodes), or their growth between two readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Store calls by method, and the seconds they took in all.
    pub store_ops: BTreeMap<String, f64>,
    pub store_seconds: BTreeMap<String, f64>,
    /// `herald_logins_total{result="ok"}` / any other result.
    pub logins_ok: f64,
    pub logins_refused: f64,
}

impl Counters {
    pub fn parse(text: &str) -> Counters {
        let mut c = Counters::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.trim().parse::<f64>() else { continue };
            if let Some(labels) = series.strip_prefix("herald_store_operation_duration_seconds_count{") {
                if let Some(op) = label(labels, "op") {
                    *c.store_ops.entry(op.to_owned()).or_default() += value;
                }
            } else if let Some(labels) = series.strip_prefix("herald_store_operation_duration_seconds_sum{") {
                if let Some(op) = label(labels, "op") {
                    *c.store_seconds.entry(op.to_owned()).or_default() += value;
                }
            } else if let Some(labels) = series.strip_prefix("herald_logins_total{") {
                match label(labels, "result") {
                    Some("ok") => c.logins_ok += value,
                    Some(_) => c.logins_refused += value,
                    None => {}
                }
            }
        }
        c
    }

    pub fn add(&mut self, other: &Counters) {
        for (op, n) in &other.store_ops {
            *self.store_ops.entry(op.clone()).or_default() += n;
        }
        for (op, n) in &other.store_seconds {
            *self.store_seconds.entry(op.clone()).or_default() += n;
        }
        self.logins_ok += other.logins_ok;
        self.logins_refused += other.logins_refused;
    }

    /// Growth since `before`; ops that did not move are left out.
    pub fn since(&self, before: &Counters) -> Counters {
        let grown = |now: &BTreeMap<String, f64>, then: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
            now.iter()
                .map(|(op, n)| (op.clone(), n - then.get(op).copied().unwrap_or(0.0)))
                .filter(|(_, n)| *n != 0.0)
                .collect()
        };
        Counters {
            store_ops: grown(&self.store_ops, &before.store_ops),
            store_seconds: grown(&self.store_seconds, &before.store_seconds),
            logins_ok: self.logins_ok - before.logins_ok,
            logins_refused: self.logins_refused - before.logins_refused,
        }
    }

    pub fn store_total(&self) -> f64 {
        self.store_ops.values().sum()
    }
}

/// `value` of `name="value"` in a label list (Herald's values never hold quotes).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let labels = labels.strip_suffix('}').unwrap_or(labels);
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// GET `http://admin/metrics`.
pub async fn read(http: &reqwest::Client, admin: SocketAddr) -> Result<Counters> {
    let response = http
        .get(format!("http://{admin}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET http://{admin}/metrics"))?;
    if !response.status().is_success() {
        bail!("GET http://{admin}/metrics: HTTP {}", response.status());
    }
    Ok(Counters::parse(&response.text().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sums_and_subtracts() {
        let text = "# TYPE herald_store_operation_duration_seconds histogram\n\
            herald_store_operation_duration_seconds_bucket{op=\"ensure_user\",le=\"0.001\"} 3\n\
            herald_store_operation_duration_seconds_sum{op=\"ensure_user\"} 0.01\n\
            herald_store_operation_duration_seconds_count{op=\"ensure_user\"} 5\n\
            herald_store_operation_duration_seconds_count{op=\"insert_broadcast\"} 2\n\
            herald_logins_total{app_id=\"7\",result=\"ok\"} 4\n\
            herald_logins_total{app_id=\"7\",result=\"6000103\"} 1\n\
            herald_sessions{app_id=\"7\"} 4\n";
        let c = Counters::parse(text);
        assert_eq!(c.store_ops.get("ensure_user"), Some(&5.0));
        assert_eq!(c.store_ops.get("insert_broadcast"), Some(&2.0));
        assert_eq!(c.store_seconds.get("ensure_user"), Some(&0.01));
        assert_eq!((c.logins_ok, c.logins_refused), (4.0, 1.0));
        assert_eq!(c.store_total(), 7.0);
        let mut twice = c.clone();
        twice.add(&c);
        let grown = twice.since(&c);
        assert_eq!(grown, c);
        assert!(c.since(&c).store_ops.is_empty());
    }
}
