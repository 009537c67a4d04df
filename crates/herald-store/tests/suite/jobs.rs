//! Offline-push jobs: recorded with their broadcast, claimed with a lease, advanced page by
//! page, finished; and the binding changes push workers rely on.

use super::{binding, broadcast, T0};
use herald_store::{PageDone, PushBinding, PushCounts, PushJobState, PushProvider, PushType, Store};

/// PushType 1 and 2 broadcasts get a pending job with no cursor and zero counts; 0 gets none.
pub async fn push_jobs_recorded_with_broadcast(store: &dyn Store) {
    let app = 4_000_000_017;
    for (id, push_type) in
        [(1, PushType::OnlineOnly), (2, PushType::OnlineAndOffline), (u64::MAX - 3, PushType::OfflineOnly)]
    {
        store.insert_broadcast(&broadcast(app, id, push_type, T0 + id as i64 % 7)).await.expect("insert failed");
    }
    let get = |id| async move { store.get_push_job(app, id).await.expect("get_push_job failed") };
    assert_eq!(get(1).await, None, "jobs: PushType 0 has no push job");
    assert_eq!(get(99).await, None, "jobs: unknown id has no push job");
    for (id, push_type) in [(2, PushType::OnlineAndOffline), (u64::MAX - 3, PushType::OfflineOnly)] {
        let job = get(id).await.unwrap_or_else(|| panic!("jobs: PushType {push_type} must have a job"));
        assert_eq!(
            (job.app_id, job.message_id, job.push_type, job.state, job.cursor, job.counts, job.finished_at_ms),
            (app, id, push_type, PushJobState::Pending, None, PushCounts::default(), None),
            "jobs: a new job is pending at the start with zero counts"
        );
    }
    // A refused duplicate broadcast must not leave a second job or touch the first.
    assert!(
        store.insert_broadcast(&broadcast(app, 2, PushType::OfflineOnly, T0)).await.is_err(),
        "jobs: duplicate id refused"
    );
    assert_eq!(
        get(2).await.map(|j| j.push_type),
        Some(PushType::OnlineAndOffline),
        "jobs: the duplicate left the job alone"
    );
}

/// Claims go oldest first and hold a lease; only the holder advances or finishes; a node
/// reclaims its own job at once; an expired lease lets another node resume at the cursor.
pub async fn push_job_lifecycle(store: &dyn Store) {
    let app = 4_000_000_018;
    let lease = 60_000;
    store.insert_broadcast(&broadcast(app, 20, PushType::OfflineOnly, T0 + 5)).await.expect("insert failed");
    store.insert_broadcast(&broadcast(app, 10, PushType::OnlineAndOffline, T0 + 9)).await.expect("insert failed");
    let claim = |owner: &'static str, now: i64| async move {
        store.claim_push_job(app, owner, now, lease).await.expect("claim_push_job failed")
    };
    let first = claim("node-a", T0 + 100).await.expect("jobs: a pending job is claimable");
    assert_eq!((first.message_id, first.state), (20, PushJobState::Running), "jobs: oldest first, now running");
    let second = claim("node-b", T0 + 200).await.expect("jobs: the other job is free");
    assert_eq!(second.message_id, 10, "jobs: a leased job is skipped, the next one claimed");
    assert!(claim("node-c", T0 + 250).await.is_none(), "jobs: both leased, nothing for node-c");
    let again = claim("node-a", T0 + 300).await.expect("jobs: the holder reclaims its own job");
    assert_eq!(again.message_id, 20, "jobs: a restarting node picks its oldest job up again");

    let delta = PushCounts { targeted: 3, sent: 2, failed: 1, removed: 1, skipped_online: 4 };
    let advance = |owner: &'static str, cursor: (&'static str, &'static str), now: i64| async move {
        store
            .advance_push_job(app, 20, owner, PageDone { cursor, delta }, now, lease)
            .await
            .expect("advance_push_job failed")
    };
    assert!(!advance("node-b", ("x", "y"), T0 + 400).await, "jobs: a non-holder cannot advance");
    assert!(advance("node-a", ("u1", "d1"), T0 + 500).await, "jobs: the holder advances");
    assert!(advance("node-a", ("u2", "d_2"), T0 + 600).await, "jobs: and again");
    let job = store.get_push_job(app, 20).await.expect("get_push_job failed").expect("job exists");
    let twice = PushCounts { targeted: 6, sent: 4, failed: 2, removed: 2, skipped_online: 8 };
    assert_eq!(job.cursor, Some(("u2".to_string(), "d_2".to_string())), "jobs: cursor is the last page's end");
    assert_eq!(
        (job.counts, job.updated_at_ms, job.state),
        (twice, T0 + 600, PushJobState::Running),
        "jobs: counts add up"
    );

    // node-a dies: its lease (T0 + 600 + lease) must end before node-c may take the job over.
    let expired = T0 + 600 + lease + 1;
    let taken = claim("node-c", expired).await.expect("jobs: an expired lease frees the job");
    assert_eq!(taken.message_id, 20, "jobs: the oldest expired job first");
    assert_eq!((taken.cursor, taken.counts), (job.cursor.clone(), twice), "jobs: the new owner resumes at the cursor");
    assert!(!advance("node-a", ("u3", "d"), expired).await, "jobs: the old owner lost the job");
    assert!(!store.finish_push_job(app, 20, "node-a", expired).await.expect("finish failed"), "jobs: nor finish it");
    assert!(store.finish_push_job(app, 20, "node-c", expired + 1).await.expect("finish failed"), "jobs: finished");
    let done = store.get_push_job(app, 20).await.expect("get_push_job failed").expect("job exists");
    assert_eq!((done.state, done.finished_at_ms, done.counts), (PushJobState::Done, Some(expired + 1), twice));
    assert!(store.finish_push_job(app, 10, "node-b", expired).await.expect("finish failed"), "jobs: 10 finished");
    assert!(claim("node-c", expired + 2).await.is_none(), "jobs: a done job is never claimed again");
    assert!(!store.finish_push_job(app, 20, "node-c", expired + 3).await.expect("finish failed"), "jobs: done once");
    let other = store.claim_push_job(app + 1, "node-a", T0, lease).await.expect("claim_push_job failed");
    assert!(other.is_none(), "jobs: claims see only their own app");
}

/// A push ID belongs to one binding: binding it elsewhere removes the old holder (same app and
/// provider only). Dead-token removal only removes a binding still holding that token.
pub async fn push_token_moves_and_dead_removal(store: &dyn Store) {
    let app = 4_000_000_019;
    let of = |user: &'static str| async move { store.push_bindings_of(app, user).await.expect("push_bindings_of") };
    let old = binding(app, "ann", "phone", "shared-token");
    let apns = PushBinding { provider: PushProvider::Apns, ..binding(app, "cat", "pad", "shared-token") };
    let other_app = binding(app + 1, "ann", "phone", "shared-token");
    for b in [&old, &apns, &other_app] {
        store.bind_push(b).await.expect("bind_push failed");
    }
    let new = PushBinding { updated_at_ms: T0 + 1, ..binding(app, "bob", "phone", "shared-token") };
    store.bind_push(&new).await.expect("bind_push failed");
    assert!(of("ann").await.is_empty(), "push: the token moved from ann to bob");
    assert_eq!(of("bob").await, std::slice::from_ref(&new), "push: bob holds it");
    assert_eq!(of("cat").await, [apns], "push: the same string on another provider is another token");
    let in_other = store.push_bindings_of(app + 1, "ann").await.expect("push_bindings_of");
    assert_eq!(in_other, [other_app], "push: other apps keep theirs");
    store.bind_push(&new).await.expect("rebinding the same binding works");
    assert_eq!(of("bob").await, std::slice::from_ref(&new), "push: rebinding itself keeps the binding");

    let remove = |push_id: &'static str| async move {
        store.remove_push_binding(app, "bob", "phone", push_id).await.expect("remove_push_binding failed")
    };
    assert!(!remove("stale-token").await, "push: a dead stale token leaves the fresher binding");
    assert_eq!(of("bob").await, [new], "push: still bound");
    assert!(remove("shared-token").await, "push: the dead token's binding is removed");
    assert!(of("bob").await.is_empty(), "push: gone");
    assert!(!remove("shared-token").await, "push: removing twice is false");
}
