//! The wiring and the listener: [`start`] builds every part once (choosing single-node or
//! cluster presence here and nowhere else) and serves the server API (`/`) and the gateway
//! (`/ws`) on one address, plain HTTP or TLS, HTTP/1.1 and HTTP/2, with graceful shutdown.
//! `listener.rs` is the accept loop and what it does when descriptors run out; `routes.rs`
//! what each path does.

mod descriptors;
mod listener;
mod routes;

use crate::admin::Admin;
use crate::admission::{Admission, Caps};
use crate::api::Api;
use crate::broadcast::{Broadcaster, Dispatch, Dispatchers, Presence};
use crate::clock::Clock;
use crate::cluster::{ClusterPresence, NatsRelay};
use crate::config::{Config, TlsConfig};
use crate::devapp;
use crate::gateway::Gateway;
use crate::hub::{Hub, RecoveryWindow};
use crate::ids::IdGenerator;
use crate::metrics::Metrics;
use crate::timed_store::{TimedStore, STORE_OPS};
use listener::Listener;
use routes::Routes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open the store: {0}")]
    Store(#[from] herald_store::StoreError),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("development app: {0}")]
    DevApp(String),
    #[error("push provider setup failed: {0}")]
    Push(String),
}

/// A started server. Dropping it does not stop it; cancel the token given to [`start`].
pub struct Running {
    pub local_addr: SocketAddr,
    /// Where the admin listener ended up (`admin.listen`, port 0 resolved).
    pub admin_addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub gateway: Arc<Gateway>,
    /// The apps served (configured, or the development app).
    pub apps: Vec<crate::config::AppConfig>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until the server has shut down.
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Opens the store, binds the listener and starts serving until `shutdown` is cancelled.
pub async fn start(
    mut config: Config,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    if config.apps.is_empty() {
        let app = devapp::load_or_create(&config.data_dir).map_err(StartError::DevApp)?;
        config.apps.push(app);
    }
    let store_options = herald_store::OpenOptions { max_connections: config.store.max_connections };
    let store_url = config.store_url();
    let metrics = Arc::new(Metrics::new(&crate::api::action_labels(), STORE_OPS));
    let store = TimedStore::wrap(herald_store::open_with(&store_url, &store_options).await?, metrics.clone());
    if let Some(path) = store_url.strip_prefix("sqlite://") {
        devapp::warn_if_readable_by_others(std::path::Path::new(path.split('?').next().unwrap_or(path)));
    }
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let listener = bind(config.listen).map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let node_id = config.node_id();
    let ids = Arc::new(IdGenerator::new(node_id));
    let tracker = TaskTracker::new();
    let recovery = RecoveryWindow::new(config.recovery_window(), config.gateway.recovery_max_messages);
    let hub = Hub::start(store.clone(), clock.clone(), metrics.clone(), recovery, tracker.clone(), shutdown.clone());
    let app_ids: Vec<u32> = config.apps.iter().map(|a| a.app_id).collect();
    let mut nats = None;
    // One node: the hub knows who is online. A cluster: the shared store does, per node lease.
    let presence: Arc<dyn Presence> = match &config.cluster {
        None => {
            hub.load_recovery_window(&app_ids).await?;
            hub.clone()
        }
        Some(cluster) => {
            // Subscribed before the window is loaded, and relayed broadcasts handed to the hub
            // only after: none is missed, and the hub skips those the store already gave it.
            let (relay, subscription) = NatsRelay::connect(cluster, tracker.clone(), metrics.clone()).await?;
            nats = Some(relay.clone());
            hub.load_recovery_window(&app_ids).await?;
            hub.set_relay(relay.clone());
            tracker.spawn(relay.run(subscription, hub.clone(), shutdown.clone()));
            let lease = Duration::from_millis(cluster.node_lease_ms);
            crate::cluster::join(&*store, node_id, clock.now_ms(), lease).await?;
            tracker.spawn(crate::cluster::keep_lease(store.clone(), clock.clone(), node_id, lease, shutdown.clone()));
            tracing::info!(node_id, nats = %cluster.nats_url, "joined the cluster");
            Arc::new(ClusterPresence { store: store.clone(), clock: clock.clone(), node_id })
        }
    };
    let mut gateway_config = config.gateway.clone();
    let fd_limit = descriptors::open_files_limit();
    gateway_config.max_connections = descriptors::session_cap(config.gateway.max_connections, fd_limit);
    if gateway_config.max_connections < config.gateway.max_connections {
        tracing::warn!(
            "gateway.max_connections is {} but this process may open {} files: WebSocket upgrades past {} \
             answer 503 (the rest is kept for the store, NATS, API and push connections); \
             raise `ulimit -n` to allow more",
            config.gateway.max_connections,
            fd_limit.unwrap_or_default(),
            gateway_config.max_connections,
        );
    }
    let gateway = Gateway::new(
        gateway_config,
        &config.apps,
        store.clone(),
        hub.clone(),
        ids.clone(),
        clock.clone(),
        shutdown.clone(),
        tracker.clone(),
        presence.clone(),
        metrics.clone(),
    );
    // Started before the API serves, so jobs a previous run left unfinished resume at once.
    let worker = crate::push::build_worker(&config, store.clone(), metrics.clone(), presence.clone(), clock.clone())
        .map_err(StartError::Push)?;
    tracker.spawn(worker.clone().run(shutdown.clone()));
    let engines: Vec<Arc<dyn Dispatch>> = vec![Arc::new(hub.clone()), worker];
    let broadcaster = Arc::new(Broadcaster::new(store.clone(), Arc::new(Dispatchers(engines))));
    let api = Arc::new(Api::new(
        &config.apps,
        config.api.clone(),
        store.clone(),
        clock.clone(),
        ids,
        presence.clone(),
        broadcaster,
        metrics.clone(),
    ));
    let request_timeout = Duration::from_millis(config.api.request_timeout_ms);
    let routes = Routes { api, gateway: gateway.clone(), max_body: config.api.max_body_bytes, request_timeout };
    let caps =
        Caps { http_per_ip: config.api.max_connections_per_ip, websocket_per_ip: config.gateway.max_pending_per_ip };
    let admission = Admission::new(caps);
    let admin_addr = config.admin.listen;
    let admin_listener =
        TcpListener::bind(admin_addr).await.map_err(|source| StartError::Bind { addr: admin_addr, source })?;
    let admin_local_addr =
        admin_listener.local_addr().map_err(|source| StartError::Bind { addr: admin_addr, source })?;
    let admin = Admin::new(
        config.admin.clone(),
        &config.apps,
        routes.api.clone(),
        hub.clone(),
        presence,
        store,
        admission.clone(),
        metrics,
        clock,
        nats,
        node_id,
    );
    tracker.spawn(admin.serve(admin_listener, shutdown.clone(), tracker.clone()));
    if config.admin.token.is_none() {
        tracing::info!(admin_listen = %admin_local_addr, "admin listener: metrics at /metrics; the console is off until admin.token is set");
    } else {
        tracing::info!(admin_listen = %admin_local_addr, "admin listener: metrics at /metrics, console at /console");
    }
    let max_open = descriptors::connection_cap(fd_limit);
    let listener = Listener { listener, tls, routes, admission, max_open, shutdown, tracker };
    // The root task: it owns the tracker and waits for it; `Running::wait` awaits this one.
    #[allow(clippy::disallowed_methods)]
    let done = tokio::spawn(listener.run());
    Ok(Running { local_addr, admin_addr: admin_local_addr, hub, gateway, apps: config.apps.clone(), done })
}

/// Connections the kernel may hold for the accept loop. Tokio's default (1024) overflowed when
/// a thousand clients connected at once: the kernel dropped the rest, and each came back only
/// after TCP's one-second SYN retransmit (1,000 logins took 1.1 s instead of 0.15 s). The kernel
/// caps this at `net.core.somaxconn` (4096 on current Linux).
const LISTEN_BACKLOG: u32 = 65_535;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, StartError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| StartError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(&tls.cert)?;
    let key_pem = read(&tls.key)?;
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Tls(format!("bad certificate in {}: {e}", tls.cert.display())))?;
    if certs.is_empty() {
        return Err(StartError::Tls(format!("no certificate found in {}", tls.cert.display())));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| StartError::Tls(format!("bad private key in {}: {e}", tls.key.display())))?
        .ok_or_else(|| StartError::Tls(format!("no private key found in {}", tls.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(format!("certificate and key do not fit: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}
