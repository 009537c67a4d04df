//! Remembers recent message IDs so a broadcast delivered twice reaches the app once.

use std::collections::{HashSet, VecDeque};

/// A bounded set: the oldest ID is forgotten when a new one would exceed the capacity.
///
/// It lives in the connection task, outside any one connection, so it spans reconnects: a node
/// that replays a broadcast to a session that got it just before the drop is filtered here.
#[derive(Debug)]
pub(crate) struct Dedup {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Dedup {
    /// A capacity of 0 turns deduplication off.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// True the first time `id` is offered (while it is remembered), false for a repeat.
    pub(crate) fn first_seen(&mut self, id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_dropped() {
        let mut d = Dedup::new(4);
        assert!(d.first_seen("1"));
        assert!(d.first_seen("2"));
        assert!(!d.first_seen("1"));
        assert!(!d.first_seen("2"));
    }

    #[test]
    fn oldest_is_forgotten_at_capacity() {
        let mut d = Dedup::new(2);
        assert!(d.first_seen("1"));
        assert!(d.first_seen("2"));
        assert!(d.first_seen("3"));
        assert!(d.first_seen("1"), "1 was evicted by 3");
        assert!(!d.first_seen("3"));
        assert_eq!(d.order.len(), 2);
        assert_eq!(d.seen.len(), 2);
    }

    #[test]
    fn zero_capacity_lets_everything_through() {
        let mut d = Dedup::new(0);
        assert!(d.first_seen("1"));
        assert!(d.first_seen("1"));
    }
}
