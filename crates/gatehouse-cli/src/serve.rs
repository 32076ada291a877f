//! The listener: accepts TCP connections (TCP_NODELAY), optionally terminates TLS (rustls, ALPN
//! `h2` and `http/1.1`), serves HTTP/1.1 and HTTP/2 with hyper-util's auto connection builder,
//! and shuts down gracefully.
//!
//! Why not `axum::serve`: it cannot set the header-read timeout (slowloris), the header size
//! limit or TLS. Connection-level limits live here; request-level ones (concurrency, request
//! timeout, body and token sizes) live in the router ([`crate::app`]) and the Gatehouse layer.
//!
//! Shutdown: when `shutdown` resolves the listener is closed at once (new connections are
//! refused), every connection is told to finish its in-flight requests and close (HTTP/1.1:
//! after the current response; HTTP/2: GOAWAY), and the server waits up to `grace` for them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use gatehouse::settings::LimitSettings as LimitsConfig;

use crate::config::TlsConfig;

/// Connection-level settings.
#[derive(Clone)]
pub struct ServeOptions {
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// TLS, when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// How long in-flight requests get after the shutdown signal.
    pub grace: Duration,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .field("grace", &self.grace)
            .finish()
    }
}

/// Loads a PEM certificate chain and private key into a rustls acceptor offering `h2` and
/// `http/1.1`. Errors name the key (`tls.cert_file`, `tls.key_file`) at fault.
pub fn tls_acceptor(c: &TlsConfig) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let read_err = |key: &str, path: &Path| format!("`{key}` = {}", path.display());
    let certs = CertificateDer::pem_file_iter(&c.cert_file)
        .with_context(|| read_err("tls.cert_file", &c.cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| read_err("tls.cert_file", &c.cert_file))?;
    if certs.is_empty() {
        anyhow::bail!(
            "{}: no PEM certificate found",
            read_err("tls.cert_file", &c.cert_file)
        );
    }
    let key = PrivateKeyDer::from_pem_file(&c.key_file)
        .with_context(|| read_err("tls.key_file", &c.key_file))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("tls: protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("`tls.key_file` does not match `tls.cert_file`, or the key is unusable")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn connection_builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_seconds))
        // hyper refuses a head that does not fit its read buffer with 431.
        .max_buf_size(limits.max_header_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see the module docs).
/// `stopped_accepting` runs right after the listener is closed.
pub async fn run<F>(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: F,
    stopped_accepting: impl FnOnce(),
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let builder = connection_builder(&options.limits);
    let handshake_timeout = Duration::from_secs(options.limits.tls_handshake_timeout_seconds);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: log, breathe, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // TCP_NODELAY: without it SSE responses and stateful replies stall ~44 ms each on the
        // Nagle/delayed-ACK interaction (test-peers.md, rmcp facts).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            // What axum's `into_make_service_with_connect_info` provides: the trusted-proxy
            // check and the per-address rate limit read it.
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &options.tls {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .into_owned();
                tokio::spawn(async move {
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let tls =
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    drop(listener);
    tracing::info!(
        addr = ?addr,
        grace_seconds = options.grace.as_secs(),
        "stopped accepting connections; finishing in-flight requests"
    );
    stopped_accepting();
    match tokio::time::timeout(options.grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            grace_seconds = options.grace.as_secs(),
            "shutdown grace period over; closing the remaining connections"
        ),
    }
    Ok(())
}
