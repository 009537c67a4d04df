//! Push bindings: bind, rebind, unbind, and the paging cursor of push jobs.

use super::{binding, T0};
use herald_store::{PushBinding, PushProvider, Store};

/// A device holds one binding; rebinding replaces it; unbinding removes only that device.
pub async fn push_bind_rebind_unbind(store: &dyn Store) {
    let app = 4_000_000_013;
    let of =
        |user: &'static str| async move { store.push_bindings_of(app, user).await.expect("push_bindings_of failed") };
    let phone = binding(app, "pat", "phone", "token-1");
    store.bind_push(&phone).await.expect("bind_push failed");
    assert_eq!(of("pat").await, std::slice::from_ref(&phone), "push: bound");

    let phone = PushBinding { push_id: "token-2".into(), provider: PushProvider::Apns, updated_at_ms: T0 + 1, ..phone };
    store.bind_push(&phone).await.expect("bind_push failed");
    assert_eq!(of("pat").await, std::slice::from_ref(&phone), "push: a rebind replaces push id, provider and time");

    let laptop = PushBinding { provider: PushProvider::Webhook, ..binding(app, "pat", "laptop", "hook-1") };
    store.bind_push(&laptop).await.expect("bind_push failed");
    assert_eq!(of("pat").await, [laptop.clone(), phone.clone()], "push: all devices, ordered by device id");
    assert!(of("nobody").await.is_empty(), "push: no bindings for an unknown user");

    let unbind =
        |device: &'static str| async move { store.unbind_push(app, "pat", device).await.expect("unbind_push failed") };
    assert!(unbind("phone").await, "push: unbinding a bound device is true");
    assert!(!unbind("phone").await, "push: unbinding it again is false");
    assert!(!unbind("tablet").await, "push: unbinding an unknown device is false");
    assert_eq!(of("pat").await, [laptop], "push: the other device keeps its binding");
}

/// 250 bindings in pages of 100: each exactly once, in (user_id, device_id) byte order (the
/// order of Rust's `str`; PostgreSQL needs `COLLATE "C"` for it), and a cursor that no longer
/// exists still resumes at the next binding.
pub async fn push_paging(store: &dyn Store) {
    let app = 4_000_000_014;
    // Mixed case and punctuation make byte order differ from any locale's order.
    let mut want: Vec<PushBinding> = Vec::new();
    for i in 0..123 {
        for device in ["d-a", "d_B"] {
            want.push(binding(app, &format!("user{i:03}"), device, &format!("t{i}{device}")));
        }
    }
    for user_id in ["User_X", "user-x", "userX", "user_x"] {
        want.push(binding(app, user_id, "d", user_id));
    }
    assert_eq!(want.len(), 250);
    // Bind in a scrambled order so the store, not insertion order, has to sort.
    for i in 0..want.len() {
        store.bind_push(&want[(i * 97) % want.len()]).await.expect("bind_push failed");
    }
    store.bind_push(&binding(app + 1, "user000", "d-a", "other-app")).await.expect("bind_push failed");
    want.sort_by(|a, b| (&a.user_id, &a.device_id).cmp(&(&b.user_id, &b.device_id)));

    let mut seen: Vec<PushBinding> = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let after = seen.last().map(|b| (b.user_id.as_str(), b.device_id.as_str()));
        let page = store.push_bindings_page(app, after, 100).await.expect("push_bindings_page failed");
        sizes.push(page.len());
        if page.is_empty() {
            break;
        }
        assert!(sizes.len() <= 4, "paging: does not end (page sizes so far {sizes:?})");
        seen.extend(page);
    }
    assert_eq!(sizes, [100, 100, 50, 0], "paging: page sizes");
    let key = |b: &PushBinding| (b.user_id.clone(), b.device_id.clone());
    if let Some(i) = (0..want.len()).find(|&i| seen[i] != want[i]) {
        panic!("paging: at {i} want {:?}, got {:?} (every binding once, in byte order)", key(&want[i]), key(&seen[i]));
    }

    let resumed = store.push_bindings_page(app, Some(("user050", "d-zz")), 2).await.expect("push_bindings_page failed");
    let got: Vec<_> = resumed.iter().map(|b| (b.user_id.as_str(), b.device_id.as_str())).collect();
    assert_eq!(got, [("user050", "d_B"), ("user051", "d-a")], "paging: a cursor that is not a row resumes after it");
}
