//! The real Rust SDK against a test server: configs with quick reconnects, and waits for events
//! that never hang a test.

use super::{Server, APP_ID, HOUR_S, PATIENCE};
use herald_sdk::{ClientConfig, ConnectionState, Event, Events, ReconnectPolicy};
use std::time::Duration;

/// An SDK config for `user_id` on `server` with a one-hour CBC token, quick reconnects and a
/// 5 s login timeout.
pub fn sdk_config(server: &Server, user_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new([server.url()], APP_ID, user_id, server.token(user_id, HOUR_S));
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        factor: 2.0,
        max_attempts: None,
    };
    config.login_timeout = Duration::from_secs(5);
    config
}

/// The next SDK event; panics on silence or the end of the stream.
pub async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(PATIENCE, events.next()).await.expect("an SDK event in time").expect("the stream goes on")
}

/// Skips events until `want` matches one, which is returned.
pub async fn event_where(events: &mut Events, what: &str, want: impl Fn(&Event) -> bool) -> Event {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(e) = events.next().await {
            if want(&e) {
                return Some(e);
            }
            seen.push(e);
        }
        None
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the event stream ended before {what}; saw {seen:?}"),
        Err(_) => panic!("no {what} in time; saw {seen:?}"),
    }
}

/// Waits for a `ConnectionStateChanged` to `state`; returns its event and `extended_data`.
pub async fn state_change(events: &mut Events, state: ConnectionState) -> (herald_sdk::ConnectionEvent, String) {
    match event_where(
        events,
        &format!("state {state:?}"),
        |e| matches!(e, Event::ConnectionStateChanged { state: s, .. } if *s == state),
    )
    .await
    {
        Event::ConnectionStateChanged { event, extended_data, .. } => (event, extended_data),
        _ => unreachable!(),
    }
}

/// Waits for the broadcast whose text is `text`, skipping everything before it.
pub async fn broadcast_received(events: &mut Events, text: &str) -> herald_sdk::ZimMessage {
    match event_where(
        events,
        &format!("broadcast {text:?}"),
        |e| matches!(e, Event::BroadcastMessageReceived(m) if m.message == text),
    )
    .await
    {
        Event::BroadcastMessageReceived(m) => m,
        _ => unreachable!(),
    }
}

/// The next broadcast, whatever its text, skipping connection events; panics on silence.
pub async fn next_broadcast(events: &mut Events) -> herald_sdk::ZimMessage {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.next().await {
                Some(Event::BroadcastMessageReceived(m)) => return m,
                Some(_) => continue,
                None => panic!("the event stream ended before a broadcast"),
            }
        }
    })
    .await
    .expect("a broadcast arrives in time")
}
