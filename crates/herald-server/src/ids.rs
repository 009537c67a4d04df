//! Unique 64-bit ids for `RequestId`s, message ids and session ids.
//!
//! Layout (most significant first): 41 bits of milliseconds since 2024-01-01, 10 bits of node
//! id, 12 bits of sequence. Ids rise with time, so they stay unique across restarts of a node
//! and, with distinct node ids, across a cluster. They always come from the wall clock, never
//! from an injected test clock, because uniqueness must not depend on a test's choices.

use crate::clock::system_now_ms;
use std::sync::atomic::{AtomicU64, Ordering};

const EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;

#[derive(Debug)]
pub struct IdGenerator {
    node: u64,
    /// The last id handed out; the next one is always greater.
    last: AtomicU64,
}

impl IdGenerator {
    pub fn new(node: u16) -> Self {
        IdGenerator { node: u64::from(node) & ((1 << NODE_BITS) - 1), last: AtomicU64::new(0) }
    }

    pub fn next(&self) -> u64 {
        let ms = (system_now_ms() - EPOCH_MS).max(0) as u64;
        let floor = (ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            // Same millisecond (or a clock step back): take the next sequence number; a full
            // sequence spills into the next millisecond, which keeps ids unique and rising.
            let candidate = if floor > last {
                floor
            } else {
                if last & ((1 << SEQ_BITS) - 1) == (1 << SEQ_BITS) - 1 {
                    (((last >> (NODE_BITS + SEQ_BITS)) + 1) << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS)
                } else {
                    last + 1
                }
            };
            match self.last.compare_exchange_weak(last, candidate, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return candidate,
                Err(seen) => last = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_rising_under_contention() {
        let ids = std::sync::Arc::new(IdGenerator::new(3));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..20_000).map(|_| ids.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            let v = h.join().unwrap();
            assert!(v.windows(2).all(|w| w[0] < w[1]), "ids from one thread must rise");
            for id in v {
                assert!(all.insert(id), "duplicate id {id}");
                assert_eq!((id >> SEQ_BITS) & ((1 << NODE_BITS) - 1), 3, "node bits kept");
            }
        }
        assert_eq!(all.len(), 80_000);
    }
}
