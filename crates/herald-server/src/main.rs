//! The `herald` binary: parses arguments, loads config, starts tracing, and calls the library.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use herald_proto::token04::Mode;
use herald_server::cli;
use herald_server::clock::{Clock, SystemClock};
use herald_server::config::{Config, LogFormat};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "herald", version, about = "Self-hosted in-app chat server with ZEGOCLOUD ZIM's server API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (API at /, WebSocket gateway at /ws).
    Serve {
        /// TOML configuration file (see herald.example.toml); without it, embedded defaults.
        #[arg(long, env = "HERALD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Make or read Token04 login tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Send one signed server-API request and print the answer.
    Call {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long)]
        app_id: u32,
        #[arg(long, env = "HERALD_SECRET")]
        secret: String,
        /// e.g. UserRegister, QueryUserInfos, SendMessageToAllUsers.
        action: String,
        /// JSON body; sent with POST. Without it the request is a GET.
        json: Option<String>,
        /// Extra query parameters, e.g. --query 'UserId[]=alice'.
        #[arg(long = "query", value_parser = parse_pair)]
        query: Vec<(String, String)>,
    },
    /// Broadcast a text message to every user of the app (SendMessageToAllUsers).
    SendAll {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long)]
        app_id: u32,
        #[arg(long, env = "HERALD_SECRET")]
        secret: String,
        /// FromUserId: a registered user (or one that has logged in).
        #[arg(long)]
        from: String,
        #[arg(long)]
        text: String,
        /// 0 online only, 1 online and offline push, 2 offline push only.
        #[arg(long, default_value_t = 0)]
        push_type: u8,
    },
    /// Log in as a client and print each broadcast as one JSON line.
    Listen {
        #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
        url: String,
        #[arg(long)]
        app_id: u32,
        #[arg(long)]
        user_id: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value = "2.18.0")]
        sdk_version: String,
        /// This device's id (1..=64 bytes). Default: a random one per run; pass a fixed one to
        /// keep a push binding across runs (a newer login from the same id replaces the older).
        #[arg(long)]
        device_id: Option<String>,
        #[arg(long, requires = "push_provider")]
        push_id: Option<String>,
        #[arg(long, value_parser = ["fcm", "apns", "webhook"], requires = "push_id")]
        push_provider: Option<String>,
        /// Exit 0 after this many broadcasts.
        #[arg(long)]
        count: Option<u64>,
        /// Exit non-zero if this many seconds pass first.
        #[arg(long)]
        timeout: Option<u64>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new Token04.
    New {
        #[arg(long)]
        app_id: u32,
        #[arg(long)]
        user_id: String,
        #[arg(long, env = "HERALD_SECRET")]
        secret: String,
        /// Validity in seconds (ZIM allows at most 24 days).
        #[arg(long, default_value_t = 86_400)]
        ttl: i64,
        #[arg(long, default_value = "gcm")]
        mode: Mode,
    },
    /// Decode a Token04 and print its contents as JSON.
    Inspect {
        #[arg(long, env = "HERALD_SECRET")]
        secret: String,
        token: String,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    let now_s = SystemClock.now_s();
    match command {
        Command::Serve { config } => serve(config).await,
        Command::Token(TokenCommand::New { app_id, user_id, secret, ttl, mode }) => {
            println!(
                "{}",
                cli::token::new_token(app_id, &user_id, &secret, ttl, mode, now_s).map_err(anyhow::Error::msg)?
            );
            Ok(())
        }
        Command::Token(TokenCommand::Inspect { secret, token }) => {
            println!("{}", cli::token::inspect(&secret, &token, now_s).map_err(anyhow::Error::msg)?);
            Ok(())
        }
        Command::Call { url, app_id, secret, action, json, query } => {
            let answer = cli::call::call(&url, app_id, &secret, &action, json.as_deref(), &query, now_s).await;
            println!("{}", answer.map_err(anyhow::Error::msg)?);
            Ok(())
        }
        Command::SendAll { url, app_id, secret, from, text, push_type } => {
            let body = cli::call::send_all_body(&from, &text, push_type);
            let answer = cli::call::call(&url, app_id, &secret, "SendMessageToAllUsers", Some(&body), &[], now_s).await;
            println!("{}", answer.map_err(anyhow::Error::msg)?);
            Ok(())
        }
        Command::Listen {
            url,
            app_id,
            user_id,
            token,
            sdk_version,
            device_id,
            push_id,
            push_provider,
            count,
            timeout,
        } => {
            let args = cli::listen::ListenArgs {
                url,
                app_id,
                user_id,
                token,
                sdk_version,
                device_id,
                push: push_id.zip(push_provider),
                count,
                timeout: timeout.map(Duration::from_secs),
            };
            let mut out = std::io::stdout();
            cli::listen::listen(args, &mut out).await.map_err(anyhow::Error::msg)
        }
    }
}

async fn serve(config_path: Option<PathBuf>) -> Result<()> {
    let config = Config::load(config_path.as_deref())?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .with_context(|| format!("invalid log filter {:?}", config.log))?;
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        // Colour codes only for a person at a terminal, never into a file or a pipe.
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    let shutdown = CancellationToken::new();
    let running = herald_server::start(config, Arc::new(SystemClock), shutdown.clone()).await?;
    tracing::info!(addr = %running.local_addr, apps = running.apps.len(), "herald is serving the API at / and the gateway at /ws");
    let stop = shutdown.clone();
    // The signal watcher lives as long as the process; nothing needs to wait for it.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    running.wait().await;
    if !shutdown.is_cancelled() {
        bail!("the listener stopped unexpectedly");
    }
    tracing::info!("herald stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
