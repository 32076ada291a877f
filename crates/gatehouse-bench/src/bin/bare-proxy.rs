//! `bare-proxy --listen 127.0.0.1:P --upstream http://127.0.0.1:Q`: a reverse proxy on hyper
//! with no authentication, the ceiling the gateway rows compare the gateway with. Prints
//! `bare-proxy ready url=http://ADDR` once it accepts connections, then runs until
//! SIGINT/SIGTERM.

use gatehouse_bench::{args, bare_proxy};
use tokio_util::sync::CancellationToken;

/// The same allocator as the `gatehouse` binary, so the rows compare like with like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = args::required("listen")?.parse()?;
    if !listen.ip().is_loopback() {
        anyhow::bail!("bare-proxy has no authentication: it listens on loopback only");
    }
    let upstream: http::Uri = args::required("upstream")?.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let forwarder = bare_proxy::Forwarder::new(&upstream)?;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let serving = tokio::spawn(bare_proxy::serve(listener, forwarder, stop.clone()));
        println!("bare-proxy ready url=http://{addr}");
        gatehouse_bench::shutdown_signal().await;
        stop.cancel();
        serving.await??;
        Ok(())
    })
}
