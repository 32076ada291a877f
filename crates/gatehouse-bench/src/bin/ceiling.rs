//! `ceiling --listen 127.0.0.1:P --mode none|verify [--issuer URL --audience URL]`: a bare axum
//! server answering `POST /mcp`, with or without one ES256 verification per request.
//! Runs until SIGINT/SIGTERM.

use axum::serve::ListenerExt as _;
use gatehouse_bench::{args, ceiling};

/// The same allocator as the `gatehouse` binary, so the ratios compare like with like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = args::required("listen")?.parse()?;
    let mode = args::required("mode")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mode = match mode.as_str() {
            "none" => ceiling::Mode::None,
            "verify" => {
                let issuer = args::required("issuer")?;
                let audience = args::required("audience")?;
                let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(format!("{issuer}/jwks"))
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                ceiling::Mode::verify_es256(&jwks, &issuer, &audience)?
            }
            other => anyhow::bail!("--mode none|verify, got {other:?}"),
        };
        let listener = tokio::net::TcpListener::bind(listen).await?;
        // Same socket option as the Gatehouse server, so the comparison is like for like.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, ceiling::router(mode))
            .with_graceful_shutdown(shutdown())
            .await?;
        Ok(())
    })
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
}
