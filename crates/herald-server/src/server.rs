//! The wiring and the listener: [`start`] builds every part once (choosing single-node or
//! cluster presence here and nowhere else) and serves the server API (`/`) and the gateway
//! (`/ws`) on one address, plain HTTP or TLS, HTTP/1.1 and HTTP/2, with graceful shutdown.

use crate::api::{Api, ApiError, Body};
use crate::broadcast::{Broadcaster, Dispatch, Dispatchers, Presence};
use crate::clock::Clock;
use crate::cluster::{ClusterPresence, NatsRelay};
use crate::config::{Config, TlsConfig};
use crate::devapp;
use crate::gateway::Gateway;
use crate::hub::{Hub, RecoveryWindow};
use crate::ids::IdGenerator;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for requests and sessions to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
    let store = herald_store::open_with(&config.store_url(), &store_options).await?;
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let node_id = config.node_id();
    let ids = Arc::new(IdGenerator::new(node_id));
    let tracker = TaskTracker::new();
    let recovery = RecoveryWindow::new(config.recovery_window(), config.gateway.recovery_max_messages);
    let hub = Hub::start(store.clone(), clock.clone(), recovery, tracker.clone(), shutdown.clone());
    let app_ids: Vec<u32> = config.apps.iter().map(|a| a.app_id).collect();
    // One node: the hub knows who is online. A cluster: the shared store does, per node lease.
    let presence: Arc<dyn Presence> = match &config.cluster {
        None => {
            hub.load_recovery_window(&app_ids).await?;
            hub.clone()
        }
        Some(cluster) => {
            // Subscribed before the window is loaded, and relayed broadcasts handed to the hub
            // only after: none is missed, and the hub skips those the store already gave it.
            let (relay, subscription) = NatsRelay::connect(cluster, tracker.clone()).await?;
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
    let gateway = Gateway::new(
        config.gateway.clone(),
        &config.apps,
        store.clone(),
        hub.clone(),
        ids.clone(),
        clock.clone(),
        shutdown.clone(),
        tracker.clone(),
        presence.clone(),
    );
    // Started before the API serves, so jobs a previous run left unfinished resume at once.
    let worker =
        crate::push::build_worker(&config, store.clone(), presence.clone(), clock.clone()).map_err(StartError::Push)?;
    tracker.spawn(worker.clone().run(shutdown.clone()));
    let engines: Vec<Arc<dyn Dispatch>> = vec![Arc::new(hub.clone()), worker];
    let broadcaster = Arc::new(Broadcaster::new(store.clone(), Arc::new(Dispatchers(engines))));
    let api = Arc::new(Api::new(&config.apps, config.api.clone(), store, clock, ids, presence, broadcaster));
    let max_body = config.api.max_body_bytes;
    let routes = Routes { api, gateway: gateway.clone(), max_body };
    // The root task: it owns the tracker and waits for it; `Running::wait` awaits this one.
    #[allow(clippy::disallowed_methods)]
    let done = tokio::spawn(accept_loop(listener, tls, routes, shutdown, tracker));
    Ok(Running { local_addr, hub, gateway, apps: config.apps.clone(), done })
}

#[derive(Clone)]
struct Routes {
    api: Arc<Api>,
    gateway: Arc<Gateway>,
    max_body: usize,
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: Routes,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let builder = Builder::new(TokioExecutor::new());
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a reset before accept: keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let routes = routes.clone();
        let svc = service_fn(move |req| {
            let routes = routes.clone();
            async move { Ok::<_, Infallible>(routes.serve(req).await) }
        });
        match &tls {
            None => {
                // Plain TCP speaks HTTP/1.1 only: hyper then hands the upgraded socket back as
                // the bare `TcpStream` (the auto builder would wrap it for protocol sniffing),
                // which lets the fan-out write to it directly.
                let conn = http1.serve_connection(TokioIo::new(tcp), svc).with_upgrades();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    tokio::pin!(conn);
                    tokio::select! {
                        res = conn.as_mut() => if let Err(e) = res {
                            tracing::debug!(%peer, error = %e, "http connection ended with an error");
                        },
                        _ = shutdown.cancelled() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        _ => return tracing::debug!(%peer, "TLS handshake failed or timed out"),
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = shutdown.cancelled() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    tracker.close();
    tracing::info!("shutting down: closing sessions and finishing requests");
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await;
}

impl Routes {
    async fn serve(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/ws" => self.gateway.upgrade(req),
            "/healthz" => text(StatusCode::OK, "ok"),
            "/" => self.api(req).await,
            other => json(StatusCode::NOT_FOUND, self.api.error_answer(&ApiError::NoSuchPath(other.to_string()))),
        }
    }

    async fn api(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::POST {
            let err = ApiError::MethodNotAllowed(req.method().to_string());
            return json(StatusCode::OK, self.api.error_answer(&err));
        }
        let query = req.uri().query().map(str::to_string);
        let body = match Limited::new(req.into_body(), self.max_body).collect().await {
            Ok(collected) => Body::Bytes(collected.to_bytes()),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                Body::TooLarge { limit: self.max_body }
            }
            Err(e) => Body::Failed(e.to_string()),
        };
        json(StatusCode::OK, self.api.handle(query.as_deref(), body).await)
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response parts are valid")
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
