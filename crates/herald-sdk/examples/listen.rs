//! Logs in and prints every broadcast and connection change until interrupted.
//!
//! ```sh
//! HERALD_URLS=ws://127.0.0.1:8080/ws HERALD_APP_ID=1234567890 HERALD_USER_ID=alice \
//!   HERALD_TOKEN=04AAAA… cargo run -p herald-sdk --example listen
//! ```
//!
//! `HERALD_URLS` may list several nodes, comma-separated: reconnects move along the list.

use herald_sdk::{Client, ClientConfig, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = config_from_env()?;

    let (client, mut events) = Client::login(config).await?;
    println!("logged in, session {}", client.session_id().unwrap_or_default());

    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Event::BroadcastMessageReceived(msg)) => {
                    println!("{}", serde_json::to_string(&msg)?);
                }
                Some(Event::ConnectionStateChanged { state, event, extended_data }) => {
                    println!("connection: {state:?} ({event:?}) {extended_data}");
                }
                Some(Event::TokenWillExpire { seconds }) => {
                    println!("token expires in {seconds} s: get a new one and call renew_token");
                }
                None => break, // the session ended for good; the last event said why
            },
            _ = tokio::signal::ctrl_c() => {
                client.logout().await?;
                break;
            }
        }
    }
    Ok(())
}

fn config_from_env() -> Result<ClientConfig, Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let urls = std::env::var("HERALD_URLS").unwrap_or_else(|_| "ws://127.0.0.1:8080/ws".to_owned());
    let app_id = var("HERALD_APP_ID")?.parse()?;
    let config = ClientConfig::new(urls.split(','), app_id, var("HERALD_USER_ID")?, var("HERALD_TOKEN")?);
    Ok(config)
}
