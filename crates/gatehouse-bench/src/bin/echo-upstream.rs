//! `echo-upstream --listen 127.0.0.1:P [--tls-cert FILE --tls-key FILE]`: the minimal Streamable
//! HTTP MCP server of the gateway rows (one `echo` tool, stateless, JSON answers, no
//! authentication). With a certificate and key (PEM) it serves https (HTTP/1.1), for the
//! gateway's https rows. Prints `echo-upstream ready url=http(s)://ADDR/mcp` once it accepts
//! connections (port 0 picks a free one), then runs until SIGINT/SIGTERM.

use std::sync::Arc;

use axum::serve::ListenerExt as _;
use gatehouse_bench::{args, upstream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

/// The same allocator as the `gatehouse` binary, so the rows compare like with like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = args::required("listen")?.parse()?;
    if !listen.ip().is_loopback() {
        anyhow::bail!("echo-upstream has no authentication: it listens on loopback only");
    }
    let tls = match (args::get("tls-cert"), args::get("tls-key")) {
        (Some(cert), Some(key)) => Some(acceptor(&cert, &key)?),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let router = upstream::router(cancel.child_token());
        let Some(tls) = tls else {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            println!("echo-upstream ready url=http://{addr}/mcp");
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    gatehouse_bench::shutdown_signal().await;
                    cancel.cancel();
                })
                .await?;
            return Ok(());
        };
        println!("echo-upstream ready url=https://{addr}/mcp");
        let shutdown = gatehouse_bench::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let tcp = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(_) => continue,
                },
            };
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
        cancel.cancel();
        Ok(())
    })
}

/// TLS 1.3/1.2 with the certificate chain and key of two PEM files, HTTP/1.1 by ALPN.
fn acceptor(cert: &str, key: &str) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
