//! The bare reverse proxy of the gateway rows: the ceiling for "one proxy hop". It forwards
//! every request to one upstream unchanged and streams the answer back — no authentication, no
//! parsing of the body, no policy — on hyper, the HTTP stack under both axum and reqwest.
//!
//! The gateway's requests per second are read as a fraction of this one's: whatever the gateway
//! does beyond a hop (the token, the policy, MCP on both sides) is the difference.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Answers: the upstream's body as it streams in, or a short error of our own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): a proxy must not
/// pass them on. Everything else goes through as the client sent it, `Host` included.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// The forwarding half: a pooled HTTP/1.1 client to one upstream authority.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Incoming>,
    /// `host:port` of the upstream; each request keeps its own path and query.
    authority: http::uri::Authority,
}

impl Forwarder {
    /// A forwarder to `upstream` (`http://host:port`, any path is ignored: the client's path is
    /// kept).
    pub fn new(upstream: &Uri) -> anyhow::Result<Self> {
        if upstream.scheme_str() != Some("http") {
            anyhow::bail!("the bare proxy speaks plain http to its upstream, got {upstream}");
        }
        let authority = upstream
            .authority()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("upstream {upstream} has no host"))?;
        let mut connector = HttpConnector::new();
        // The same socket option as every server of the bench: small answers go out at once.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { client, authority })
    }

    /// Sends `req` to the upstream with its method, path, query, headers (less hop-by-hop ones)
    /// and body, and returns the upstream's answer with its body still streaming.
    pub async fn forward(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = parts.uri.path_and_query().cloned();
        parts.uri = match Uri::from_parts(uri) {
            Ok(u) => u,
            Err(_) => return error(StatusCode::BAD_REQUEST, "bad request target"),
        };
        strip_hop_by_hop(&mut parts.headers);
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Either::Left(body))
            }
            Err(_) => error(StatusCode::BAD_GATEWAY, "upstream unreachable"),
        }
    }
}

/// Removes the hop-by-hop headers, including any the `Connection` header names.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn error(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp
}

/// Accepts connections on `listener` and forwards every request until `stop`; connections
/// under way are left to finish on their own (the bench stops the process right after).
pub async fn serve(
    listener: TcpListener,
    forwarder: Forwarder,
    stop: CancellationToken,
) -> std::io::Result<()> {
    loop {
        let (tcp, _peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors, or a connection reset before accept: keep serving, after
                // a pause so that a persistent error does not spin the core under test.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let forwarder = forwarder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let forwarder = forwarder.clone();
                async move { Ok::<_, Infallible>(forwarder.forward(req).await) }
            });
            // The same connection handling as axum::serve (HTTP/1.1, or HTTP/2 by preface).
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", "keep-alive, X-Hop".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-hop", "one connection only".parse().unwrap());
        headers.insert("authorization", "Bearer t".parse().unwrap());
        headers.insert("mcp-protocol-version", "2025-11-25".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "mcp-protocol-version"]);
    }
}
