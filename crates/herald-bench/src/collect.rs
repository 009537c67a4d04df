//! Receipts of one worker process: per broadcast, each client's delay by the tool's clock and by
//! the kernel's receive timestamp, both measured from the send time carried in the payload.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::client::node_of;

/// In the `k` lists: this receipt had no kernel timestamp.
pub const NO_STAMP: u32 = u32::MAX;
/// Broadcast indexes above this are someone else's traffic, not ours.
const MAX_INDEX: usize = 100_000;

/// What a worker sends back: `u[b][i]` and `k[b][i]` are the same receipt's delays in µs, and
/// `n[b][i]` the index of the server (node) the receiving client is connected to.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WorkerResult {
    pub u: Vec<Vec<u32>>,
    pub k: Vec<Vec<u32>>,
    #[serde(default)]
    pub n: Vec<Vec<u16>>,
    pub received: u64,
    pub dup: u64,
    pub unexpected: u64,
    pub no_kts: u64,
    pub closed: u64,
    pub close_reasons: Vec<String>,
}

pub struct Collector {
    /// Broadcasts expected per client; 0 until the parent says `collect`.
    expect: usize,
    /// Global index of client 0 and the number of servers: client `c` is on node
    /// `node_of(first + c, nodes)`.
    first: usize,
    nodes: usize,
    /// Logged-in clients per node.
    pub node_ok: Vec<usize>,
    got: Vec<u32>,
    last: Vec<i64>,
    closed: Vec<bool>,
    missing_closed: usize,
    pub ok: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    u: Vec<Vec<u32>>,
    k: Vec<Vec<u32>>,
    n: Vec<Vec<u16>>,
    received: u64,
    dup: u64,
    no_kts: u64,
    closed_count: u64,
    close_reasons: Vec<String>,
    pub ready: Rc<Notify>,
    pub done: Rc<Notify>,
}

impl Collector {
    pub fn new(clients: usize, first: usize, nodes: usize) -> Collector {
        let nodes = nodes.max(1);
        Collector {
            expect: 0,
            first,
            nodes,
            node_ok: vec![0; nodes],
            got: vec![0; clients],
            last: vec![-1; clients],
            closed: vec![false; clients],
            missing_closed: 0,
            ok: 0,
            failed: 0,
            first_error: None,
            u: Vec::new(),
            k: Vec::new(),
            n: Vec::new(),
            received: 0,
            dup: 0,
            no_kts: 0,
            closed_count: 0,
            close_reasons: Vec::new(),
            ready: Rc::new(Notify::new()),
            done: Rc::new(Notify::new()),
        }
    }

    pub fn clients(&self) -> usize {
        self.got.len()
    }

    fn node(&self, client: usize) -> usize {
        node_of(self.first + client, self.nodes)
    }

    pub fn logged_in(&mut self, client: usize) {
        self.ok += 1;
        let node = self.node(client);
        self.node_ok[node] += 1;
        self.check_ready();
    }

    pub fn login_failed(&mut self, error: String) {
        self.failed += 1;
        self.first_error.get_or_insert(error);
        self.check_ready();
    }

    fn check_ready(&self) {
        if self.ok + self.failed == self.clients() {
            self.ready.notify_one();
        }
    }

    /// A session ended (server closed it, or an error).
    pub fn closed(&mut self, client: usize, reason: String) {
        if std::mem::replace(&mut self.closed[client], true) {
            return;
        }
        self.closed_count += 1;
        if self.close_reasons.len() < 5 {
            self.close_reasons.push(reason);
        }
        if self.expect > 0 {
            self.missing_closed += self.expect.saturating_sub(self.got[client] as usize);
            self.check_done();
        }
    }

    /// Start waiting for `broadcasts` per logged-in client.
    pub fn collect(&mut self, broadcasts: usize) {
        self.expect = broadcasts;
        self.missing_closed = (0..self.clients())
            .filter(|&c| self.closed[c])
            .map(|c| broadcasts.saturating_sub(self.got[c] as usize))
            .sum();
        self.check_done();
    }

    /// One received broadcast. Times are CLOCK_REALTIME ns.
    pub fn record(&mut self, client: usize, index: u32, send_ns: i64, tool_ns: i64, kernel_ns: Option<i64>) {
        let b = index as usize;
        if b >= MAX_INDEX {
            return;
        }
        if i64::from(index) <= self.last[client] {
            self.dup += 1;
            return;
        }
        self.last[client] = i64::from(index);
        self.got[client] += 1;
        self.received += 1;
        if self.u.len() <= b {
            self.u.resize_with(b + 1, Vec::new);
            self.k.resize_with(b + 1, Vec::new);
            self.n.resize_with(b + 1, Vec::new);
        }
        let node = self.node(client) as u16;
        self.n[b].push(node);
        self.u[b].push(micros(tool_ns - send_ns));
        self.k[b].push(match kernel_ns {
            Some(k) => micros(k - send_ns).min(NO_STAMP - 1),
            None => {
                self.no_kts += 1;
                NO_STAMP
            }
        });
        self.check_done();
    }

    fn check_done(&self) {
        if self.expect > 0 && self.received as usize + self.missing_closed >= self.ok * self.expect {
            self.done.notify_one();
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn expected(&self) -> u64 {
        (self.ok * self.expect) as u64
    }

    /// Hand over the receipts of broadcasts `0..expect`.
    pub fn take_result(&mut self) -> WorkerResult {
        let mut u = std::mem::take(&mut self.u);
        let mut k = std::mem::take(&mut self.k);
        let mut n = std::mem::take(&mut self.n);
        let unexpected: usize = u.iter().skip(self.expect).map(Vec::len).sum();
        for v in [&mut u, &mut k] {
            v.truncate(self.expect);
            v.resize_with(self.expect, Vec::new);
        }
        n.truncate(self.expect);
        n.resize_with(self.expect, Vec::new);
        WorkerResult {
            u,
            k,
            n,
            received: self.received - unexpected as u64,
            dup: self.dup,
            unexpected: unexpected as u64,
            no_kts: self.no_kts,
            closed: self.closed_count,
            close_reasons: std::mem::take(&mut self.close_reasons),
        }
    }
}

fn micros(ns: i64) -> u32 {
    (ns.max(0) / 1000).min(i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_dedups() {
        let mut c = Collector::new(2, 3, 2);
        c.logged_in(0);
        c.logged_in(1);
        assert_eq!(c.node_ok, vec![1, 1]);
        c.record(0, 0, 1_000, 3_000, Some(2_000)); // before collect: kept
        c.collect(2);
        c.record(0, 0, 1_000, 3_000, None); // duplicate
        c.record(1, 0, 1_000, 5_000, Some(4_000));
        c.record(0, 1, 10_000, 12_000, Some(11_000));
        c.closed(1, "gone".into());
        let r = c.take_result();
        assert_eq!(r.received, 3);
        assert_eq!(r.dup, 1);
        assert_eq!(r.u, vec![vec![2, 4], vec![2]]);
        assert_eq!(r.k, vec![vec![1, 3], vec![1]]);
        // Clients 0 and 1 are global 3 and 4: nodes 1 and 0 of 2.
        assert_eq!(r.n, vec![vec![1, 0], vec![1]]);
        assert_eq!(r.closed, 1);
    }
}
