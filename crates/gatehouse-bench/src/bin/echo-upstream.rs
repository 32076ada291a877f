//! `echo-upstream --listen 127.0.0.1:P`: the minimal Streamable HTTP MCP server of the gateway
//! rows (one `echo` tool, stateless, JSON answers, no authentication). Prints
//! `echo-upstream ready url=http://ADDR/mcp` once it accepts connections (port 0 picks a free
//! one), then runs until SIGINT/SIGTERM.

use axum::serve::ListenerExt as _;
use gatehouse_bench::{args, upstream};
use tokio_util::sync::CancellationToken;

/// The same allocator as the `gatehouse` binary, so the rows compare like with like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = args::required("listen")?.parse()?;
    if !listen.ip().is_loopback() {
        anyhow::bail!("echo-upstream has no authentication: it listens on loopback only");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let cancel = CancellationToken::new();
        println!("echo-upstream ready url=http://{addr}/mcp");
        axum::serve(listener, upstream::router(cancel.child_token()))
            .with_graceful_shutdown(async move {
                gatehouse_bench::shutdown_signal().await;
                cancel.cancel();
            })
            .await?;
        Ok(())
    })
}
