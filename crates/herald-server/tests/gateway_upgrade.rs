//! The WebSocket upgrade at `/ws` (docs/protocol.md, "Transport"): subprotocol negotiation,
//! requests that are not upgrades, and `gateway.max_connections`.

mod support;

use futures_util::stream::{FuturesUnordered, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;

async fn upgrade_with_protocols(server: &Server, protocols: &str) -> Result<(WsStream, Option<String>), u16> {
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocols).unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, response)) => {
            let echoed = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_string());
            Ok((ws, echoed))
        }
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("upgrade failed without an HTTP answer: {e}"),
    }
}

/// An upgrade's HTTP status: 101, or what the server refused it with.
async fn upgrade_status(addr: std::net::SocketAddr) -> (u16, Option<WsStream>) {
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await {
        Ok((ws, response)) => (response.status().as_u16(), Some(ws)),
        Err(WsError::Http(response)) => (response.status().as_u16(), None),
        Err(e) => panic!("upgrade failed without an HTTP answer: {e}"),
    }
}

#[tokio::test]
async fn the_herald_v1_subprotocol_is_echoed() {
    let server = Server::unthrottled().await;
    let (ws, echoed) = upgrade_with_protocols(&server, "herald.v1").await.expect("accepted");
    assert_eq!(echoed.as_deref(), Some("herald.v1"));
    let mut raw = WsClient::from_ws(ws);
    raw.send_login(APP_ID, "alice", &server.token("alice", HOUR_S)).await;
    assert_eq!(raw.frame().await["t"], "login_ok");
}

#[tokio::test]
async fn a_client_asking_only_for_other_subprotocols_gets_400() {
    let server = Server::unthrottled().await;
    assert_eq!(upgrade_with_protocols(&server, "herald.v2").await.err(), Some(400));
    assert_eq!(upgrade_with_protocols(&server, "mqtt, wamp").await.err(), Some(400));
}

#[tokio::test]
async fn a_plain_get_of_ws_gets_400() {
    let server = Server::unthrottled().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http.get(format!("http://{}/ws", server.addr)).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn upgrades_past_max_connections_get_503() {
    let server = Server::unthrottled_with("max_connections = 3").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let (status, ws) = upgrade_status(server.addr).await;
        assert_eq!(status, 101);
        open.push(ws.unwrap());
    }
    wait_for("3 connections", || server.connections() == 3).await;
    assert_eq!(upgrade_status(server.addr).await.0, 503);
    // Closing one makes room.
    drop(open.pop());
    wait_for("2 connections", || server.connections() == 2).await;
    assert_eq!(upgrade_status(server.addr).await.0, 101);
}

/// The cap must hold when upgrades arrive together, not only one after another.
#[tokio::test]
async fn max_connections_holds_for_concurrent_upgrades() {
    let server = Server::unthrottled_with("max_connections = 10").await;
    let mut upgrades: FuturesUnordered<_> = (0..40).map(|_| upgrade_status(server.addr)).collect();
    let mut open = Vec::new();
    let mut refused = 0;
    while let Some((status, ws)) = upgrades.next().await {
        match status {
            101 => open.push(ws.unwrap()),
            503 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(open.len() <= 10, "{} upgrades accepted past max_connections = 10 ({refused} refused)", open.len());
    wait_for("the accepted connections", || server.connections() == open.len()).await;
}
