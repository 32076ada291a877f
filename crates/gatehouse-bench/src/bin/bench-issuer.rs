//! `bench-issuer --listen 127.0.0.1:P --resource URL --out DIR [--tokens N] [--ttl SECS]`
//!
//! The development issuer with one client (`bench-reader`, tenant `acme`, `invoices:read`).
//! Before serving, it writes into DIR:
//! - `token.txt`: one valid token (the reused-token runs);
//! - `tokens.txt`: N distinct valid tokens, one per line (unique token per request);
//! - `invalid.txt`: a valid token with a tampered signature (the 401 path);
//!
//! then serves its metadata and JWKS on the listener until SIGINT/SIGTERM, so the servers under
//! test can fetch its keys (the key is generated at start, so tokens die with the process).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gatehouse_bench::{args, mint};
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig};

fn main() -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = args::required("listen")?.parse()?;
    let resource = args::required("resource")?;
    let out = PathBuf::from(args::required("out")?);
    let n: usize = args::parsed("tokens", 100_000)?;
    let ttl: u64 = args::parsed("ttl", 3600)?;
    std::fs::create_dir_all(&out)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let config = DevIssuerConfig {
            clients: vec![
                DevClient::new("bench-reader", "bench-secret", ["invoices:read"])
                    .with_tenant("acme"),
            ],
            token_ttl: Duration::from_secs(ttl),
            ..DevIssuerConfig::default()
        };
        let issuer = DevIssuer::for_listener(&listener, config)?;
        let started = Instant::now();
        let one = mint::mint_many(&issuer, "bench-reader", &resource, 1, 1)?;
        mint::write_lines(&out.join("token.txt"), &one)?;
        mint::write_lines(&out.join("invalid.txt"), &[mint::tamper_signature(&one[0])])?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let many = mint::mint_many(&issuer, "bench-reader", &resource, n, threads)?;
        mint::write_lines(&out.join("tokens.txt"), &many)?;
        eprintln!(
            "bench-issuer: {} tokens minted in {:.1} s; serving {} on {listen}",
            n + 1,
            started.elapsed().as_secs_f64(),
            issuer.issuer()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        gatehouse_dev_issuer::serve_issuer(listener, issuer, async move {
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        })
        .await?;
        Ok(())
    })
}
