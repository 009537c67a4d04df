//! What logged-in sessions receive: the `bcast` frame as docs/protocol.md shows it, only for
//! SDKs from 2.10.0 on, and a slow reader is cut off (4002) without holding up the others.
//! Also: logout removes only its own device's push binding.

mod support;

use futures_util::StreamExt;
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

#[tokio::test]
async fn a_broadcast_arrives_as_a_zim_message() {
    let server = Server::unthrottled().await;
    let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
    server.broadcast_text("hello").await;
    let text = raw.text().await;
    assert!(text.starts_with(r#"{"t":"bcast","msg":{"#), "`t` comes first: {text}");
    let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
    let msg = &frame["msg"];
    assert!(msg["messageID"].as_str().is_some_and(|id| id.parse::<u64>().is_ok()), "{frame}");
    assert_eq!(
        *msg,
        json!({
            "messageID": msg["messageID"], "senderUserID": "admin", "timestamp": T0_MS, "type": 1,
            "message": "hello", "extendedData": "", "subType": 0,
            "isBroadcastMessage": true, "isServerMessage": true,
        })
    );
}

#[tokio::test]
async fn sdks_older_than_2_10_do_not_receive_broadcasts() {
    let server = Server::unthrottled().await;
    let mut sessions = Vec::new();
    for (user, version) in [("old", "2.9.9"), ("new", "2.10.0"), ("short", "2.10")] {
        let mut raw = WsClient::connect(&server).await;
        let mut login = raw.login_frame(APP_ID, user, &server.token(user, HOUR_S));
        login["sdk_version"] = json!(version);
        let (raw, ok) = raw.with_login(login).await;
        assert_eq!(ok["t"], "login_ok", "{version}: {ok}");
        sessions.push(raw);
    }
    server.broadcast_and_fan_out("for new SDKs").await;
    let [old, new, short] = &mut sessions[..] else { unreachable!() };
    for raw in [new, short] {
        let frame = raw.frame().await;
        assert_eq!(frame["msg"]["message"], "for new SDKs", "{frame}");
    }
    // The fan-out is over; the old SDK's next frame is the answer to its ping.
    assert_eq!(old.ping().await["t"], "pong");
}

#[tokio::test]
async fn logout_removes_only_its_own_devices_push_binding() {
    let server = Server::unthrottled().await;
    let mut devices = Vec::new();
    for device in ["phone", "tablet"] {
        let mut raw = WsClient::connect(&server).await;
        let mut login = raw.login_frame(APP_ID, "gina", &server.token("gina", HOUR_S));
        login["device_id"] = json!(device);
        let (mut raw, ok) = raw.with_login(login).await;
        assert_eq!(ok["t"], "login_ok");
        let push_id = format!("{device}-push");
        let ack = raw.request(|id| json!({"t": "set_push_id", "id": id, "push_id": push_id, "provider": "fcm"})).await;
        assert_eq!(ack["t"], "ack");
        devices.push(raw);
    }
    assert_eq!(server.push_bindings("gina").await.len(), 2);
    let [phone, tablet] = &mut devices[..] else { unreachable!() };
    let ack = phone.request(|id| json!({"t": "logout", "id": id})).await;
    assert_eq!(ack["t"], "ack");
    assert_eq!(phone.closed().await.code, C_NORMAL);
    assert_eq!(server.push_bindings("gina").await, vec![("tablet".into(), "tablet-push".into(), "fcm".into())]);
    assert!(server.is_online("gina").await, "the tablet is still connected");
    assert_eq!(tablet.ping().await["t"], "pong");
}

#[tokio::test]
async fn a_slow_reader_is_cut_off_without_holding_up_the_others() {
    let server = Server::unthrottled_with("outbox_frames = 8\noutbox_bytes = 131072").await;
    let (mut fast, _) = WsClient::logged_in(&server, "fast").await;

    // A client with a tiny receive buffer that stops reading after login.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(server.url(), MaybeTlsStream::Plain(stream)).await.unwrap();
    let mut slow = WsClient::from_ws(ws);
    slow.send_login(APP_ID, "slow", &server.token("slow", HOUR_S)).await;
    assert_eq!(slow.frame().await["t"], "login_ok");

    // The fast client reads everything, concurrently.
    let reader = support::spawn(async move {
        let mut got = Vec::new();
        while let Some(Ok(msg)) = fast.ws.next().await {
            if let Message::Text(t) = msg {
                let frame: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                let n: usize = frame["msg"]["message"].as_str().unwrap()[..4].parse().unwrap();
                got.push(n);
                if n == 9999 {
                    break;
                }
            }
        }
        got
    });

    let pad = "x".repeat(30_000);
    let mut sent = 0;
    while server.is_online("slow").await {
        assert!(sent < 500, "30 kB × {sent} broadcasts never filled the slow reader's buffers");
        server.broadcast_and_fan_out(&format!("{sent:04}{pad}")).await;
        sent += 1;
    }
    server.broadcast_and_fan_out(&format!("9999{pad}")).await;
    let got = tokio::time::timeout(PATIENCE, reader).await.expect("the fast reader finishes").unwrap();
    let mut want: Vec<usize> = (0..sent).collect();
    want.push(9999);
    assert_eq!(got, want, "the fast client got every broadcast, in order");

    // The slow one gets what was in flight, then the connection ends (4002 if the close frame
    // still fit behind the backlog).
    let mut received = 0;
    loop {
        match tokio::time::timeout(PATIENCE, slow.ws.next()).await.expect("the slow connection ends") {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(Some(c)))) => {
                assert_eq!(u16::from(c.code), 4002, "slow consumer");
                break;
            }
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(_)) | None => break,
        }
    }
    assert!(received < sent, "the slow client was cut off: {received} of {sent}");
}
