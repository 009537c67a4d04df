//! Herald's Prometheus metrics (names and labels in docs/admin.md are a contract).
//!
//! Counters and histograms live here; gauges that describe state (sessions, connections, push
//! jobs, the process) are read when scraped, by the admin listener. Nothing here is on the
//! fan-out's per-socket path: deliveries are added once per broadcast per node.
//!
//! Label values come from bounded sets only — configured app ids, return and close codes, action
//! names — so a client cannot grow the registry by sending garbage.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms: 50 µs to 10 s.
const BUCKETS_S: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A counter per combination of label values. The combinations seen so far are few (apps ×
/// codes), so a short list under a lock beats a map.
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<Vec<(Vec<String>, u64)>>,
}

impl CounterVec {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        CounterVec { name, help, labels, values: Mutex::new(Vec::new()) }
    }

    pub fn add(&self, values: &[&str], n: u64) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let mut all = self.values.lock().unwrap_or_else(|p| p.into_inner());
        match all.iter_mut().find(|(v, _)| v.iter().map(String::as_str).eq(values.iter().copied())) {
            Some((_, count)) => *count += n,
            None => all.push((values.iter().map(|v| v.to_string()).collect(), n)),
        }
    }

    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    /// The current value, for tests and the console.
    pub fn get(&self, values: &[&str]) -> u64 {
        let all = self.values.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().find(|(v, _)| v.iter().map(String::as_str).eq(values.iter().copied())).map_or(0, |(_, n)| *n)
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} counter", self.name, self.help, self.name);
        let mut all = self.values.lock().unwrap_or_else(|p| p.into_inner()).clone();
        all.sort();
        for (values, n) in all {
            let _ = writeln!(out, "{}{{{}}} {n}", self.name, label_text(self.labels, &values));
        }
    }
}

/// A latency histogram: atomic buckets, so recording takes no lock.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_S.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS_S.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS_S.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{braces} {sum}\n{name}_count{braces} {count}");
    }
}

/// Histograms for a fixed set of label values (known when the registry is built).
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    series: Vec<(&'static str, Histogram)>,
}

impl HistogramVec {
    fn new(name: &'static str, help: &'static str, label: &'static str, values: &[&'static str]) -> Self {
        HistogramVec { name, help, label, series: values.iter().map(|v| (*v, Histogram::new())).collect() }
    }

    /// The histogram of `value`; values outside the fixed set are not recorded.
    pub fn with(&self, value: &str) -> Option<&Histogram> {
        self.series.iter().find(|(v, _)| *v == value).map(|(_, h)| h)
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} histogram", self.name, self.help, self.name);
        for (value, h) in &self.series {
            if h.count() > 0 {
                h.render(self.name, &format!("{}=\"{}\"", self.label, escape(value)), out);
            }
        }
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn label_text(names: &[&str], values: &[String]) -> String {
    names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",")
}

/// Every counter and histogram of one server.
pub struct Metrics {
    pub logins: CounterVec,
    pub session_closes: CounterVec,
    pub api_requests: CounterVec,
    pub api_duration: HistogramVec,
    pub broadcasts: CounterVec,
    pub deliveries: CounterVec,
    pub fanout_duration: Histogram,
    pub push_sends: CounterVec,
    pub relayed: CounterVec,
    pub store_duration: HistogramVec,
}

/// A gauge read at scrape time: name, help, and its samples (label text, value).
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
    pub samples: Vec<(String, f64)>,
}

impl Gauge {
    pub fn single(name: &'static str, help: &'static str, value: f64) -> Gauge {
        Gauge { name, help, kind: "gauge", samples: vec![(String::new(), value)] }
    }

    pub fn labelled(name: &'static str, help: &'static str, label: &str, samples: Vec<(String, f64)>) -> Gauge {
        let samples = samples.into_iter().map(|(v, n)| (format!("{label}=\"{}\"", escape(&v)), n)).collect();
        Gauge { name, help, kind: "gauge", samples }
    }
}

impl Metrics {
    /// `actions` and `store_ops` are the fixed label values of the two histogram families.
    pub fn new(actions: &[&'static str], store_ops: &[&'static str]) -> Metrics {
        Metrics {
            logins: CounterVec::new(
                "herald_logins_total",
                "WebSocket logins by result (ok or the SDK error code)",
                &["app_id", "result"],
            ),
            session_closes: CounterVec::new(
                "herald_session_closes_total",
                "Sessions ended, by WebSocket close code (0: the client went away)",
                &["code"],
            ),
            api_requests: CounterVec::new(
                "herald_api_requests_total",
                "Server API requests by action and answer code",
                &["action", "code"],
            ),
            api_duration: HistogramVec::new(
                "herald_api_request_duration_seconds",
                "Time to answer a server API request, body read included",
                "action",
                actions,
            ),
            broadcasts: CounterVec::new(
                "herald_broadcasts_total",
                "SendMessageToAllUsers calls: accepted, or the refusal code",
                &["app_id", "result"],
            ),
            deliveries: CounterVec::new(
                "herald_broadcast_deliveries_total",
                "Sessions a broadcast was written to on this node, live and replayed",
                &["app_id"],
            ),
            fanout_duration: Histogram::new(),
            push_sends: CounterVec::new(
                "herald_push_sends_total",
                "Vendor push attempts by result",
                &["app_id", "provider", "result"],
            ),
            relayed: CounterVec::new(
                "herald_cluster_relayed_total",
                "Broadcasts relayed over NATS, by direction",
                &["direction"],
            ),
            store_duration: HistogramVec::new(
                "herald_store_operation_duration_seconds",
                "Store calls, by method",
                "op",
                store_ops,
            ),
        }
    }

    /// The Prometheus text format: these metrics, then the scrape-time gauges.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::with_capacity(8192);
        for g in gauges {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", g.name, g.help, g.name, g.kind);
            for (labels, value) in &g.samples {
                let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
                let _ = writeln!(out, "{}{braces} {value}", g.name);
            }
        }
        for c in [&self.logins, &self.session_closes, &self.api_requests, &self.broadcasts, &self.deliveries] {
            c.render(&mut out);
        }
        self.api_duration.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP herald_fanout_duration_seconds From accept (or relay receipt) to the last socket write on this node\n# TYPE herald_fanout_duration_seconds histogram"
        );
        self.fanout_duration.render("herald_fanout_duration_seconds", "", &mut out);
        for c in [&self.push_sends, &self.relayed] {
            c.render(&mut out);
        }
        self.store_duration.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_gauges_render_in_the_text_format() {
        let m = Metrics::new(&["UserRegister"], &["ensure_user"]);
        m.logins.inc(&["7", "ok"]);
        m.logins.inc(&["7", "ok"]);
        m.logins.inc(&["7", "6000103"]);
        m.api_duration.with("UserRegister").unwrap().observe(Duration::from_micros(300));
        assert!(m.api_duration.with("nope").is_none(), "label values outside the set are not kept");
        m.fanout_duration.observe(Duration::from_millis(3));
        let text = m.render(&[Gauge::labelled("herald_sessions", "h", "app_id", vec![("7".into(), 2.0)])]);
        for line in [
            "herald_sessions{app_id=\"7\"} 2",
            "herald_logins_total{app_id=\"7\",result=\"ok\"} 2",
            "herald_logins_total{app_id=\"7\",result=\"6000103\"} 1",
            "herald_api_request_duration_seconds_bucket{action=\"UserRegister\",le=\"0.0005\"} 1",
            "herald_api_request_duration_seconds_bucket{action=\"UserRegister\",le=\"0.00025\"} 0",
            "herald_api_request_duration_seconds_count{action=\"UserRegister\"} 1",
            "herald_fanout_duration_seconds_bucket{le=\"+Inf\"} 1",
            "herald_fanout_duration_seconds_count 1",
            "# TYPE herald_store_operation_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.logins.get(&["7", "ok"]), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        let c = CounterVec::new("x_total", "h", &["v"]);
        c.inc(&["a\"b\\c\nd"]);
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains(r#"x_total{v="a\"b\\c\nd"} 1"#), "{out}");
    }
}
