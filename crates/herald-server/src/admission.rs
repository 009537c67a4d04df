//! Which connections the server takes, and which it lets go first when it runs short.
//!
//! Every accepted TCP connection holds a [`Ticket`] until it ends. A connection counts as
//! *unauthenticated* until it proves who it is — an API request that passes its signature check,
//! or a WebSocket login — and unauthenticated ones are capped per client address
//! (`api.max_connections_per_ip` while they speak HTTP, `gateway.max_pending_per_ip` once
//! upgraded to WebSocket). When the process runs out of file descriptors, the listener sheds the
//! oldest unauthenticated connections to make room; logged-in sessions are never shed.
//!
//! The per-address counts are exact: a ticket gives its slot back when it authenticates or drops.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Caps on unauthenticated connections per client address; 0 means no cap.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub http_per_ip: usize,
    pub websocket_per_ip: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Speaking HTTP, nothing proved yet.
    Http,
    /// Upgraded to WebSocket, not logged in yet.
    WebSocket,
    /// Proved who it is; no longer capped or shed.
    Authenticated,
}

#[derive(Default)]
struct State {
    http: HashMap<IpAddr, usize>,
    websocket: HashMap<IpAddr, usize>,
    /// Unauthenticated connections, oldest first, with the token that ends each.
    sheddable: BTreeMap<u64, CancellationToken>,
}

pub struct Admission {
    caps: Caps,
    next_id: AtomicU64,
    /// Connections open now, authenticated or not (`herald_connections`).
    open: AtomicU64,
    state: Mutex<State>,
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many unauthenticated HTTP connections from this address (api.max_connections_per_ip = {0})")]
    HttpPerIp(usize),
    #[error("too many WebSocket connections not yet logged in from this address (gateway.max_pending_per_ip = {0})")]
    WebSocketPerIp(usize),
}

/// One connection's place: dropping it gives the place back.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    ip: IpAddr,
    stage: Mutex<Stage>,
    /// Cancelled when the connection is shed: its task ends it.
    shed: CancellationToken,
}

impl Admission {
    pub fn new(caps: Caps) -> Arc<Admission> {
        Arc::new(Admission { caps, next_id: AtomicU64::new(0), open: AtomicU64::new(0), state: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a new HTTP connection from `ip`, unless that address holds its cap already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Arc<Ticket>, Refused> {
        let mut st = self.lock();
        let count = st.http.entry(ip).or_default();
        if self.caps.http_per_ip > 0 && *count >= self.caps.http_per_ip {
            return Err(Refused::HttpPerIp(self.caps.http_per_ip));
        }
        *count += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shed = CancellationToken::new();
        st.sheddable.insert(id, shed.clone());
        Ok(Arc::new(Ticket { admission: self.clone(), id, ip, stage: Mutex::new(Stage::Http), shed }))
    }

    /// Ends up to `n` unauthenticated connections, oldest first; returns how many.
    pub fn shed(&self, n: usize) -> usize {
        let mut st = self.lock();
        let mut done = 0;
        while done < n {
            let Some((_, token)) = st.sheddable.pop_first() else { break };
            token.cancel();
            done += 1;
        }
        done
    }

    /// Connections open now, authenticated or not.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Unauthenticated connections open now.
    pub fn unauthenticated(&self) -> usize {
        self.lock().sheddable.len()
    }
}

fn release(map: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = map.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            map.remove(&ip);
        }
    }
}

impl Ticket {
    fn stage(&self) -> std::sync::MutexGuard<'_, Stage> {
        self.stage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves from HTTP to a WebSocket not yet logged in, unless the address holds its cap of
    /// those already. An authenticated connection upgrades freely.
    pub fn upgrade(&self) -> Result<(), Refused> {
        let mut stage = self.stage();
        if *stage != Stage::Http {
            return Ok(());
        }
        let caps = self.admission.caps;
        let mut st = self.admission.lock();
        let count = st.websocket.get(&self.ip).copied().unwrap_or(0);
        if caps.websocket_per_ip > 0 && count >= caps.websocket_per_ip {
            return Err(Refused::WebSocketPerIp(caps.websocket_per_ip));
        }
        release(&mut st.http, self.ip);
        *st.websocket.entry(self.ip).or_default() += 1;
        *stage = Stage::WebSocket;
        Ok(())
    }

    /// The connection proved who it is: it leaves the caps and is never shed.
    pub fn authenticated(&self) {
        let mut stage = self.stage();
        let mut st = self.admission.lock();
        match *stage {
            Stage::Http => release(&mut st.http, self.ip),
            Stage::WebSocket => release(&mut st.websocket, self.ip),
            Stage::Authenticated => return,
        }
        st.sheddable.remove(&self.id);
        *stage = Stage::Authenticated;
    }

    /// Resolves when the listener sheds this connection.
    pub async fn shed(&self) {
        self.shed.cancelled().await
    }

    pub fn is_shed(&self) -> bool {
        self.shed.is_cancelled()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
        let stage = *self.stage();
        let mut st = self.admission.lock();
        match stage {
            Stage::Http => release(&mut st.http, self.ip),
            Stage::WebSocket => release(&mut st.websocket, self.ip),
            Stage::Authenticated => {}
        }
        st.sheddable.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn unauthenticated_connections_are_capped_per_address() {
        let a = Admission::new(Caps { http_per_ip: 2, websocket_per_ip: 1 });
        let t1 = a.admit(ip(1)).unwrap();
        let t2 = a.admit(ip(1)).unwrap();
        assert_eq!(a.admit(ip(1)).err(), Some(Refused::HttpPerIp(2)));
        assert!(a.admit(ip(2)).is_ok(), "another address has its own cap");
        t1.authenticated();
        let t3 = a.admit(ip(1)).unwrap();
        drop(t2);
        let _t4 = a.admit(ip(1)).unwrap();
        // Upgrades move the slot; the WebSocket cap holds apart.
        t3.upgrade().unwrap();
        let t5 = a.admit(ip(1)).unwrap();
        assert_eq!(t5.upgrade(), Err(Refused::WebSocketPerIp(1)));
        t3.authenticated();
        assert!(t5.upgrade().is_ok());
        t1.upgrade().unwrap();
    }

    #[test]
    fn shedding_takes_the_oldest_unauthenticated_first_and_never_the_authenticated() {
        let a = Admission::new(Caps { http_per_ip: 0, websocket_per_ip: 0 });
        let tickets: Vec<_> = (0..4).map(|_| a.admit(ip(1)).unwrap()).collect();
        tickets[0].authenticated();
        assert_eq!(a.unauthenticated(), 3);
        assert_eq!(a.shed(2), 2);
        let shed: Vec<bool> = tickets.iter().map(|t| t.is_shed()).collect();
        assert_eq!(shed, [false, true, true, false]);
        assert_eq!(a.shed(5), 1, "only one unauthenticated connection was left");
        assert!(!tickets[0].is_shed());
        drop(tickets);
        assert_eq!(a.unauthenticated(), 0);
        assert!(a.lock().http.is_empty(), "every slot given back");
    }
}
