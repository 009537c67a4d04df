//! Logs in, reports a push ID so the user can get offline pushes, and logs out again (which
//! removes the binding) unless `--stay` is given, in which case it simply exits: the server
//! then sees the connection drop and keeps the binding, the "offline with a push ID" case.
//!
//! ```sh
//! HERALD_URLS=ws://127.0.0.1:8080/ws HERALD_APP_ID=1234567890 HERALD_USER_ID=alice \
//!   HERALD_TOKEN=04AAAA… cargo run -p herald-sdk --example push_id -- fcm my-device-token
//! ```

use herald_sdk::{Client, ClientConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stay = args.iter().any(|a| a == "--stay");
    let mut positional = args.iter().filter(|a| !a.starts_with("--"));
    let provider = positional.next().map_or("webhook", String::as_str);
    let push_id = positional.next().map_or("example-push-id", String::as_str);

    let var = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let urls = std::env::var("HERALD_URLS").unwrap_or_else(|_| "ws://127.0.0.1:8080/ws".to_owned());
    let mut config = ClientConfig::new(
        urls.split(','),
        var("HERALD_APP_ID")?.parse()?,
        var("HERALD_USER_ID")?,
        var("HERALD_TOKEN")?,
    );
    if let Ok(device_id) = std::env::var("HERALD_DEVICE_ID") {
        config.device_id = device_id;
    }

    let (client, _events) = Client::login(config).await?;
    client.set_push_id(push_id, provider).await?;
    println!("push id {push_id:?} ({provider}) bound to session {}", client.session_id().unwrap_or_default());

    if stay {
        println!("exiting without logout: the binding stays");
    } else {
        client.logout().await?;
        println!("logged out: the binding is gone");
    }
    Ok(())
}
