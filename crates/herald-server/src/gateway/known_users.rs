//! Users this node has seen exist, so a login of a known user skips the store.
//!
//! Why: a login registers an unknown user (`Store::ensure_user`), and in a reconnect storm every
//! one of those calls is a database write for a user who is already there. Users are never
//! deleted (nothing in the server API or the store removes one), so "seen to exist" stays true
//! for good and the set needs no invalidation, on this node or any other.
//!
//! Bound: at most `gateway.known_users_max` entries (0: off). When full it starts over empty:
//! the next logins of each user pay one `ensure_user` again, which is correct, only slower. The
//! common case, a node's own connected users logging in again, fits well inside the default.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub struct KnownUsers {
    max: usize,
    seen: Mutex<Seen>,
}

/// Per app, so a lookup borrows the user ID instead of building a key.
#[derive(Default)]
struct Seen {
    by_app: HashMap<u32, HashSet<Box<str>>>,
    count: usize,
}

impl KnownUsers {
    pub fn new(max: usize) -> KnownUsers {
        KnownUsers { max, seen: Mutex::new(Seen::default()) }
    }

    /// Whether the user was seen to exist in the store.
    pub fn contains(&self, app_id: u32, user_id: &str) -> bool {
        self.max > 0 && self.lock().by_app.get(&app_id).is_some_and(|users| users.contains(user_id))
    }

    /// Records that the user exists (the store said so).
    pub fn insert(&self, app_id: u32, user_id: &str) {
        if self.max == 0 {
            return;
        }
        let mut seen = self.lock();
        if seen.count >= self.max {
            *seen = Seen::default();
        }
        if seen.by_app.entry(app_id).or_default().insert(Box::from(user_id)) {
            seen.count += 1;
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().count
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        // The set is only ever inserted into or cleared: a panic elsewhere cannot leave it wrong.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_users_per_app() {
        let known = KnownUsers::new(10);
        assert!(!known.contains(1, "alice"));
        known.insert(1, "alice");
        assert!(known.contains(1, "alice"));
        assert!(!known.contains(2, "alice"), "another app's alice is another user");
    }

    #[test]
    fn starts_over_when_full_and_never_grows_past_its_bound() {
        let known = KnownUsers::new(3);
        for user in ["a", "b", "c"] {
            known.insert(1, user);
        }
        assert_eq!(known.len(), 3);
        known.insert(1, "d");
        assert_eq!(known.len(), 1);
        assert!(known.contains(1, "d") && !known.contains(1, "a"));
    }

    #[test]
    fn zero_turns_it_off() {
        let known = KnownUsers::new(0);
        known.insert(1, "alice");
        assert!(!known.contains(1, "alice"));
        assert_eq!(known.len(), 0);
    }
}
