//! What a window of a run cost the servers: CPU time of the nodes (in a cluster also of the NATS
//! and of the run's PostgreSQL backends, as `fanout` counts them), and the store calls and logins
//! the nodes' `/metrics` counted. A node killed during the run is left out of both ends.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::scrape::{self, Counters};
use crate::procfs::{self, CpuSnap};
use crate::targets::Running;

/// Everything read at one moment.
pub struct Reading {
    at: Instant,
    /// Busy time of every CPU of the machine, and of this process (the parent).
    machine: Option<f64>,
    parent: Option<f64>,
    nodes_cpu: Vec<Option<f64>>,
    broker_cpu: Option<f64>,
    store_cpu: Option<CpuSnap>,
    counters: Vec<Option<Counters>>,
}

/// The growth between two readings.
#[derive(Debug, Clone, Default)]
pub struct Cost {
    pub secs: f64,
    pub machine_cpu_ms: Option<f64>,
    pub parent_cpu_ms: Option<f64>,
    /// Per node; None when it was not alive at both readings.
    pub nodes_cpu_ms: Vec<Option<f64>>,
    pub broker_cpu_ms: Option<f64>,
    pub store_cpu_ms: Option<f64>,
    pub node_counters: Vec<Option<Counters>>,
    /// Summed over the nodes alive at both readings.
    pub counters: Counters,
}

impl Cost {
    pub fn nodes_ms(&self) -> f64 {
        self.nodes_cpu_ms.iter().flatten().sum()
    }

    /// Nodes + broker + database backends.
    pub fn total_ms(&self) -> f64 {
        self.nodes_ms() + self.broker_cpu_ms.unwrap_or(0.0) + self.store_cpu_ms.unwrap_or(0.0)
    }

    /// Store calls by method expected in `secs` at this window's rate (a background estimate).
    pub fn store_ops_in(&self, secs: f64) -> BTreeMap<String, f64> {
        let scale = if self.secs > 0.0 { secs / self.secs } else { 0.0 };
        self.counters.store_ops.iter().map(|(op, n)| (op.clone(), n * scale)).collect()
    }
}

/// Read CPU times and `/metrics` of the nodes that are `alive`.
pub async fn read(running: &Running, http: &reqwest::Client, alive: &[bool]) -> Reading {
    let at = Instant::now();
    let machine = procfs::machine_busy_ms().ok();
    let parent = procfs::cpu_ms(std::process::id()).ok();
    let live = |i: usize| alive.get(i).copied().unwrap_or(false);
    let nodes_cpu = running
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| n.pid.filter(|_| live(i)).and_then(|p| procfs::cpu_ms(p).ok()))
        .collect();
    let broker_cpu = running.broker_pid.and_then(|p| procfs::cpu_ms(p).ok());
    let store_cpu = running.db.as_ref().map(|db| CpuSnap::read(db.backend_pids()));
    let mut counters = Vec::with_capacity(running.nodes.len());
    for (i, node) in running.nodes.iter().enumerate() {
        let c = match node.admin_addr.filter(|_| live(i)) {
            Some(admin) => match scrape::read(http, admin).await {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("herald-bench: node {}: {e:#}", i + 1);
                    None
                }
            },
            None => None,
        };
        counters.push(c);
    }
    Reading { at, machine, parent, nodes_cpu, broker_cpu, store_cpu, counters }
}

impl Reading {
    pub fn since(&self, before: &Reading) -> Cost {
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        let nodes_cpu_ms: Vec<Option<f64>> =
            self.nodes_cpu.iter().zip(&before.nodes_cpu).map(|(a, b)| diff(*a, *b)).collect();
        let node_counters: Vec<Option<Counters>> =
            self.counters.iter().zip(&before.counters).map(|(a, b)| Some(a.as_ref()?.since(b.as_ref()?))).collect();
        let mut counters = Counters::default();
        for c in node_counters.iter().flatten() {
            counters.add(c);
        }
        Cost {
            secs: (self.at - before.at).as_secs_f64(),
            machine_cpu_ms: diff(self.machine, before.machine),
            parent_cpu_ms: diff(self.parent, before.parent),
            nodes_cpu_ms,
            broker_cpu_ms: diff(self.broker_cpu, before.broker_cpu),
            store_cpu_ms: match (&self.store_cpu, &before.store_cpu) {
                (Some(a), Some(b)) => Some(a.since(b)),
                _ => None,
            },
            node_counters,
            counters,
        }
    }
}
