//! What every client of one worker received, and the verdict over it. No I/O: the clients report
//! receipts, losses and logins; the parent reports each broadcast the API accepted. While a run
//! goes the ledger says who is back and caught up; at the end, per client, what was lost,
//! duplicated or out of order.
//!
//! Broadcasts are numbered by the one sequential sender (`b=<index>` in the text), so index order
//! is acceptance order. A client "is caught up" after a login at `L` once it holds every
//! broadcast whose API answer came back before `L`: what it missed while away, replayed or not.

use serde::{Deserialize, Serialize};

/// Broadcast indexes at or above this are not ours.
const MAX_INDEX: u32 = 1_000_000;
/// How long after a login every `Accepted` answered before it has surely reached the worker.
const ACCEPTED_LAG_MS: i64 = 1_000;
/// Reasons and examples kept per worker.
const KEEP: usize = 5;

/// A broadcast the API accepted: its index, the message ID it answered, and when (CLOCK_REALTIME
/// ms) the answer came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub index: u32,
    pub message_id: u64,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not logged in yet (first login).
    Connecting,
    /// The first login failed every attempt: not part of the run.
    Failed,
    Online,
    /// Between a lost connection and the next login.
    Offline,
    /// Closed for good (a terminal close code).
    GaveUp,
}

/// From losing a connection to the next login.
#[derive(Debug, Clone, Copy)]
struct Outage {
    start_ms: i64,
    login_ms: Option<i64>,
}

#[derive(Debug)]
struct Client {
    global: usize,
    state: State,
    /// Broadcast indexes received (a bitset).
    have: Vec<u64>,
    /// First receipts in arrival order: (index, ms after the ledger's base).
    receipts: Vec<(u32, u32)>,
    max_index: Option<u32>,
    /// `messageID` of the newest broadcast delivered: the next login's `since`.
    newest: Option<u64>,
    dup: u32,
    out_of_order: u32,
    login_ms: i64,
    outages: Vec<Outage>,
    /// `accepted[..cursor]` are all in `have`.
    cursor: usize,
    drop_requested: bool,
}

impl Client {
    fn has(&self, index: u32) -> bool {
        self.have.get(index as usize / 64).is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// Sets the bit; false if it was set already.
    fn insert(&mut self, index: u32) -> bool {
        let (word, bit) = (index as usize / 64, 1u64 << (index % 64));
        if self.have.len() <= word {
            self.have.resize(word + 1, 0);
        }
        let fresh = self.have[word] & bit == 0;
        self.have[word] |= bit;
        fresh
    }
}

/// Counts of one worker at one moment (the parent sums them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub online: usize,
    pub offline: usize,
    pub gave_up: usize,
    /// Clients whose connection broke at or after the mark (the drop or the kill).
    pub affected: usize,
    /// Of those: logged in again since, and caught up.
    pub back: usize,
    pub caught_up: usize,
    /// Online clients that hold every accepted broadcast.
    pub has_all: usize,
    /// Accepted broadcasts this worker knows of (the parent sums the rest, takes the least of this).
    pub accepted: usize,
    pub relogins: u64,
    pub attempts: u64,
    pub failures: u64,
}

/// Per-client delivery faults, summed over a group of clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tally {
    pub clients: usize,
    /// Accepted broadcasts the client never got.
    pub lost: u64,
    /// Receipts of a broadcast the client had already.
    pub duplicated: u64,
    /// First receipts of a broadcast older than one received before it.
    pub out_of_order: u64,
    /// Broadcasts received that the API never reported accepted.
    pub unexpected: u64,
    pub clients_with_loss: usize,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.clients += other.clients;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        self.clients_with_loss += other.clients_with_loss;
    }
}

/// One worker's verdict at the end of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verdict {
    pub clients: usize,
    pub failed: usize,
    pub gave_up: usize,
    /// Clients that never lost their connection after the first login ("online throughout").
    pub steady: Tally,
    /// Clients that lost it at least once and logged in again (or tried to).
    pub churned: Tally,
    pub relogins: u64,
    pub relogins_by_node: Vec<usize>,
    pub recovered_true: u64,
    pub recovered_false: u64,
    /// Logins with `since` whose `login_ok` had no `recovered`.
    pub recovered_missing: u64,
    /// Logins after an outage without `since` (the client had no broadcast yet).
    pub no_since: u64,
    pub attempts: u64,
    pub failures: u64,
    /// Connections that ended without the tool asking: closed by the server, or a dead node.
    pub unplanned: u64,
    /// The first few reasons of failed attempts, unplanned losses, clients that gave up.
    pub errors: Vec<String>,
    /// Broadcast indexes whose `messageID` differed between clients, or from the API's answer.
    pub id_mismatch: u64,
    /// Every client affected by the mark: its first login after it, and when it was caught up,
    /// in ms after the mark. `not_back`/`not_caught_up` count the ones without.
    pub mark_relogin_ms: Vec<i64>,
    pub mark_caught_up_ms: Vec<i64>,
    pub not_back: usize,
    pub not_caught_up: usize,
    /// Latest loss of a connection after the mark, in ms after it: how long the drop took.
    pub mark_lost_max_ms: i64,
    /// Every outage that ended: ms from losing the connection to being caught up.
    pub outage_ms: Vec<u32>,
    pub outages: usize,
    pub outages_not_back: usize,
    pub outages_not_caught_up: usize,
    /// A few faults, for the report (`client u12: lost b=7`).
    pub examples: Vec<String>,
}

pub struct Ledger {
    base_ms: i64,
    clients: Vec<Client>,
    accepted: Vec<Accepted>,
    accepted_set: Vec<u64>,
    /// The `messageID` clients saw per broadcast index (0: none yet).
    seen_ids: Vec<u64>,
    id_mismatch: u64,
    mark_ms: Option<i64>,
    pub ok: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    relogins: u64,
    relogins_by_node: Vec<usize>,
    recovered_true: u64,
    recovered_false: u64,
    recovered_missing: u64,
    no_since: u64,
    attempts: u64,
    failures: u64,
    unplanned: u64,
    errors: Vec<String>,
}

impl Ledger {
    /// `count` clients, the first of them global client `first`, over `nodes` servers.
    pub fn new(count: usize, first: usize, nodes: usize, now_ms: i64) -> Ledger {
        let clients = (0..count)
            .map(|i| Client {
                global: first + i,
                state: State::Connecting,
                have: Vec::new(),
                receipts: Vec::new(),
                max_index: None,
                newest: None,
                dup: 0,
                out_of_order: 0,
                login_ms: 0,
                outages: Vec::new(),
                cursor: 0,
                drop_requested: false,
            })
            .collect();
        Ledger {
            base_ms: now_ms,
            clients,
            accepted: Vec::new(),
            accepted_set: Vec::new(),
            seen_ids: Vec::new(),
            id_mismatch: 0,
            mark_ms: None,
            ok: 0,
            failed: 0,
            first_error: None,
            relogins: 0,
            relogins_by_node: vec![0; nodes.max(1)],
            recovered_true: 0,
            recovered_false: 0,
            recovered_missing: 0,
            no_since: 0,
            attempts: 0,
            failures: 0,
            unplanned: 0,
            errors: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn all_tried(&self) -> bool {
        self.ok + self.failed == self.clients.len()
    }

    pub fn global(&self, c: usize) -> usize {
        self.clients[c].global
    }

    pub fn newest(&self, c: usize) -> Option<u64> {
        self.clients[c].newest
    }

    pub fn is_online(&self, c: usize) -> bool {
        self.clients[c].state == State::Online
    }

    pub fn first_login(&mut self, c: usize, now_ms: i64) {
        let client = &mut self.clients[c];
        client.state = State::Online;
        client.login_ms = now_ms;
        self.ok += 1;
    }

    pub fn first_login_failed(&mut self, c: usize, error: String) {
        self.clients[c].state = State::Failed;
        self.failed += 1;
        self.first_error.get_or_insert(error);
    }

    /// One broadcast frame: its index (from the text) and `messageID`.
    pub fn record(&mut self, c: usize, index: u32, message_id: u64, now_ms: i64) {
        if index >= MAX_INDEX {
            return;
        }
        let seen = &mut self.seen_ids;
        if seen.len() <= index as usize {
            seen.resize(index as usize + 1, 0);
        }
        match seen[index as usize] {
            0 => seen[index as usize] = message_id,
            id if id != message_id => self.id_mismatch += 1,
            _ => {}
        }
        let at = (now_ms - self.base_ms).clamp(0, i64::from(u32::MAX)) as u32;
        let client = &mut self.clients[c];
        if !client.insert(index) {
            client.dup += 1;
            return;
        }
        if client.max_index.is_some_and(|m| index < m) {
            client.out_of_order += 1;
        }
        client.max_index = Some(client.max_index.map_or(index, |m| m.max(index)));
        client.newest = Some(message_id);
        client.receipts.push((index, at));
    }

    /// The connection of an online client broke (or the tool closed it).
    pub fn lost(&mut self, c: usize, now_ms: i64) {
        let client = &mut self.clients[c];
        if client.state == State::Online {
            client.state = State::Offline;
            client.outages.push(Outage { start_ms: now_ms, login_ms: None });
        }
    }

    /// A connection ended without the tool asking (the server closed it, or a node died).
    pub fn unplanned_loss(&mut self, reason: String) {
        self.unplanned += 1;
        if self.errors.len() < KEEP {
            self.errors.push(reason);
        }
    }

    pub fn attempt(&mut self) {
        self.attempts += 1;
    }

    pub fn attempt_failed(&mut self, error: String) {
        self.failures += 1;
        if self.errors.len() < KEEP {
            self.errors.push(error);
        }
    }

    /// A login after an outage, on server `node`: whether it sent `since`, and `recovered`.
    pub fn relogin(&mut self, c: usize, now_ms: i64, node: usize, asked: bool, recovered: Option<bool>) {
        let client = &mut self.clients[c];
        client.state = State::Online;
        client.login_ms = now_ms;
        client.drop_requested = false;
        if let Some(outage) = client.outages.last_mut() {
            outage.login_ms.get_or_insert(now_ms);
        }
        self.relogins += 1;
        if let Some(n) = self.relogins_by_node.get_mut(node) {
            *n += 1;
        }
        match (asked, recovered) {
            (false, _) => self.no_since += 1,
            (true, Some(true)) => self.recovered_true += 1,
            (true, Some(false)) => self.recovered_false += 1,
            (true, None) => self.recovered_missing += 1,
        }
    }

    /// Closed for good (a terminal close code): the outage that starts now never ends.
    pub fn gave_up(&mut self, c: usize, now_ms: i64, reason: String) {
        self.lost(c, now_ms);
        self.clients[c].state = State::GaveUp;
        if self.errors.len() < KEEP {
            self.errors.push(format!("client u{} gave up: {reason}", self.clients[c].global));
        }
    }

    /// Ask an online client to drop its connection; false if it is not online.
    pub fn request_drop(&mut self, c: usize) -> bool {
        let client = &mut self.clients[c];
        client.drop_requested = client.state == State::Online;
        client.drop_requested
    }

    /// Whether a drop was asked for (and clear it).
    pub fn take_drop(&mut self, c: usize) -> bool {
        std::mem::take(&mut self.clients[c].drop_requested)
    }

    pub fn accept(&mut self, accepted: Accepted) {
        let index = accepted.index as usize;
        if self.accepted_set.len() <= index / 64 {
            self.accepted_set.resize(index / 64 + 1, 0);
        }
        self.accepted_set[index / 64] |= 1 << (index % 64);
        self.accepted.push(accepted);
    }

    /// The moment of the drop or the kill (CLOCK_REALTIME ms).
    pub fn mark(&mut self, at_ms: i64) {
        self.mark_ms = Some(at_ms);
    }

    fn is_accepted(&self, index: u32) -> bool {
        self.accepted_set.get(index as usize / 64).is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    pub fn status(&mut self, now_ms: i64) -> Status {
        let mut s = Status {
            accepted: self.accepted.len(),
            relogins: self.relogins,
            attempts: self.attempts,
            failures: self.failures,
            ..Status::default()
        };
        let accepted = &self.accepted;
        let closed_after = |login_ms: i64| {
            accepted.last().is_some_and(|a| a.at_ms >= login_ms) || now_ms >= login_ms + ACCEPTED_LAG_MS
        };
        for client in &mut self.clients {
            while client.cursor < accepted.len() && client.has(accepted[client.cursor].index) {
                client.cursor += 1;
            }
            match client.state {
                State::Online => s.online += 1,
                State::Offline => s.offline += 1,
                State::GaveUp => s.gave_up += 1,
                State::Connecting | State::Failed => {}
            }
            let online = client.state == State::Online;
            if online && client.cursor == accepted.len() {
                s.has_all += 1;
            }
            let Some(mark) = self.mark_ms else { continue };
            if !client.outages.iter().any(|o| o.start_ms >= mark) {
                continue;
            }
            s.affected += 1;
            if online && client.login_ms >= mark {
                s.back += 1;
                let needed_done = client.cursor == accepted.len() || accepted[client.cursor].at_ms >= client.login_ms;
                if needed_done && closed_after(client.login_ms) {
                    s.caught_up += 1;
                }
            }
        }
        s
    }

    /// Clients that may be asked to drop: online, and not in the steady group.
    pub fn droppable(&self, steady_every: usize) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|&c| self.clients[c].state == State::Online && !is_steady(self.clients[c].global, steady_every))
            .collect()
    }

    /// Verdict over the whole run: every client should hold every accepted broadcast once.
    pub fn verdict(&self) -> Verdict {
        let mut v = Verdict {
            clients: self.clients.len(),
            failed: self.failed,
            relogins: self.relogins,
            relogins_by_node: self.relogins_by_node.clone(),
            recovered_true: self.recovered_true,
            recovered_false: self.recovered_false,
            recovered_missing: self.recovered_missing,
            no_since: self.no_since,
            attempts: self.attempts,
            failures: self.failures,
            unplanned: self.unplanned,
            errors: self.errors.clone(),
            id_mismatch: self.id_mismatch,
            ..Verdict::default()
        };
        for a in &self.accepted {
            if self.seen_ids.get(a.index as usize).is_some_and(|&id| id != 0 && id != a.message_id) {
                v.id_mismatch += 1;
                if v.examples.len() < KEEP {
                    v.examples.push(format!(
                        "b={} has messageID {} in frames, {} from the API",
                        a.index, self.seen_ids[a.index as usize], a.message_id
                    ));
                }
            }
        }
        let top = self.accepted.iter().map(|a| a.index as usize + 1).max().unwrap_or(0);
        let mut first_at = Vec::new();
        for client in &self.clients {
            if client.state == State::Failed || client.state == State::Connecting {
                continue;
            }
            if client.state == State::GaveUp {
                v.gave_up += 1;
            }
            let mut t = Tally {
                clients: 1,
                duplicated: u64::from(client.dup),
                out_of_order: u64::from(client.out_of_order),
                ..Tally::default()
            };
            for a in &self.accepted {
                if !client.has(a.index) {
                    t.lost += 1;
                    if v.examples.len() < KEEP {
                        v.examples.push(format!("client u{}: lost b={}", client.global, a.index));
                    }
                }
            }
            t.unexpected = client.receipts.iter().filter(|&&(b, _)| !self.is_accepted(b)).count() as u64;
            t.clients_with_loss = usize::from(t.lost > 0);
            if t.duplicated > 0 && v.examples.len() < KEEP {
                v.examples.push(format!("client u{}: {} duplicate(s)", client.global, t.duplicated));
            }
            if client.outages.is_empty() {
                v.steady.add(&t);
            } else {
                v.churned.add(&t);
            }

            // When each outage was over: the login, or the receipt of the last broadcast
            // answered before it, whichever came later.
            first_at.clear();
            first_at.resize(top, u32::MAX);
            for &(b, at) in &client.receipts {
                if let Some(slot) = first_at.get_mut(b as usize) {
                    *slot = at;
                }
            }
            let mut next = 0;
            let mut latest: Option<u32> = Some(0);
            let mut marked = false;
            for outage in &client.outages {
                v.outages += 1;
                let after_mark = self.mark_ms.is_some_and(|m| outage.start_ms >= m) && !marked;
                marked |= after_mark;
                if let (true, Some(mark)) = (after_mark, self.mark_ms) {
                    v.mark_lost_max_ms = v.mark_lost_max_ms.max(outage.start_ms - mark);
                }
                let Some(login) = outage.login_ms else {
                    v.outages_not_back += 1;
                    if after_mark {
                        v.not_back += 1;
                        v.not_caught_up += 1;
                    }
                    continue;
                };
                while next < self.accepted.len() && self.accepted[next].at_ms < login {
                    let at = first_at[self.accepted[next].index as usize];
                    latest = latest.filter(|_| at != u32::MAX).map(|l| l.max(at));
                    next += 1;
                }
                let caught = latest.map(|l| login.max(self.base_ms + i64::from(l)));
                match caught {
                    Some(at) => v.outage_ms.push((at - outage.start_ms).clamp(0, i64::from(u32::MAX)) as u32),
                    None => v.outages_not_caught_up += 1,
                }
                if let (true, Some(mark)) = (after_mark, self.mark_ms) {
                    v.mark_relogin_ms.push(login - mark);
                    match caught {
                        Some(at) => v.mark_caught_up_ms.push(at - mark),
                        None => v.not_caught_up += 1,
                    }
                }
            }
        }
        v
    }
}

/// Clients of the steady group are never asked to drop (`soak --steady-every`).
pub fn is_steady(global: usize, steady_every: usize) -> bool {
    global.checked_rem(steady_every) == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(index: u32, at_ms: i64) -> Accepted {
        Accepted { index, message_id: 1000 + u64::from(index), at_ms }
    }

    #[test]
    fn a_storm_client_that_recovers_everything() {
        let mut l = Ledger::new(2, 10, 1, 0);
        l.first_login(0, 5);
        l.first_login(1, 5);
        for (b, at) in [(0, 100), (1, 200)] {
            l.accept(acc(b, at));
            l.record(0, b, 1000 + u64::from(b), at + 1);
            l.record(1, b, 1000 + u64::from(b), at + 1);
        }
        assert_eq!(l.newest(0), Some(1001));
        l.mark(250);
        assert!(l.request_drop(0));
        assert!(l.take_drop(0) && !l.take_drop(0));
        l.lost(0, 251);
        l.accept(acc(2, 300));
        l.record(1, 2, 1002, 301);
        let s = l.status(320);
        assert_eq!((s.online, s.offline, s.affected, s.back, s.caught_up), (1, 1, 1, 0, 0));
        l.relogin(0, 400, 0, true, Some(true));
        // b=2 was answered before the login: not caught up until it arrives (the replay).
        assert_eq!(l.status(410).caught_up, 0);
        l.record(0, 2, 1002, 402);
        l.record(0, 2, 1002, 403); // a duplicate
                                   // Caught up, but only sure once an answer after the login is in (or a second passed).
        assert_eq!(l.status(410).caught_up, 0);
        l.accept(acc(3, 500));
        assert_eq!(l.status(510).caught_up, 1);
        l.record(0, 3, 1003, 501);
        l.record(1, 3, 1003, 501);
        assert_eq!(l.status(520).has_all, 2);
        let v = l.verdict();
        assert_eq!((v.steady.clients, v.churned.clients), (1, 1));
        assert_eq!((v.steady.lost, v.churned.lost, v.churned.duplicated, v.churned.out_of_order), (0, 0, 1, 0));
        assert_eq!(v.mark_relogin_ms, vec![150]);
        assert_eq!(v.mark_caught_up_ms, vec![152]);
        assert_eq!(v.outage_ms, vec![151]);
        assert_eq!((v.recovered_true, v.recovered_false, v.id_mismatch), (1, 0, 0));
    }

    #[test]
    fn losses_order_and_ids() {
        let mut l = Ledger::new(1, 0, 2, 0);
        l.first_login(0, 0);
        for b in 0..4 {
            l.accept(acc(b, i64::from(b) * 10));
        }
        l.record(0, 0, 1000, 1);
        l.record(0, 2, 1002, 21);
        l.record(0, 1, 999, 22); // late, and with another messageID than the API answered
        l.record(0, 7, 1007, 23); // never reported accepted
        l.lost(0, 30);
        l.relogin(0, 40, 1, false, None);
        let v = l.verdict();
        assert_eq!(
            (v.churned.lost, v.churned.out_of_order, v.churned.unexpected, v.churned.clients_with_loss),
            (1, 1, 1, 1)
        );
        assert_eq!(v.id_mismatch, 1);
        assert_eq!(v.no_since, 1);
        assert_eq!(v.relogins_by_node, vec![0, 1]);
        // b=3 (answered before the login) never came: the outage never caught up.
        assert_eq!((v.outages, v.outages_not_caught_up), (1, 1));
        assert!(v.examples.iter().any(|e| e.contains("lost b=3")), "{:?}", v.examples);
    }

    #[test]
    fn steady_clients_and_drops() {
        let mut l = Ledger::new(4, 0, 1, 0);
        for c in 0..4 {
            l.first_login(c, 0);
        }
        assert!(is_steady(0, 2) && !is_steady(1, 2) && !is_steady(3, 0));
        assert_eq!(l.droppable(2), vec![1, 3]);
        l.lost(1, 5);
        assert_eq!(l.droppable(2), vec![3]);
        assert!(!l.request_drop(1));
        l.gave_up(3, 6, "4501".into());
        let v = l.verdict();
        assert_eq!((v.gave_up, v.outages, v.outages_not_back), (1, 2, 2));
        assert_eq!((v.steady.clients, v.churned.clients), (2, 2));
    }
}
