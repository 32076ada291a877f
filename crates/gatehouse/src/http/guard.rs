//! DNS-rebinding guard: the request must name this server (`Host`) and, when a browser says where
//! it comes from (`Origin`), come from an allowed origin.
//!
//! Rules (MCP SHTTP26 §Security: servers MUST validate `Origin`, B2; rmcp GHSA-89vp-x53w-74fx):
//! - **Host.** Allowed authorities default to the resource URL's authority, plus `localhost`,
//!   `127.0.0.1` and `[::1]` with the same port when the resource (or the configured listen
//!   address) is loopback; more can be configured. The authority comes from `Host`, or from the
//!   request target for HTTP/2 `:authority` and absolute-form requests; if both are present they
//!   must agree. A missing, repeated or unparseable Host is `400`; a well-formed but foreign Host
//!   is `421` (see [`crate::http::challenge`] for why not `403`).
//! - A Host without a port means the default port of the request's scheme: the resource's scheme,
//!   or a trusted `X-Forwarded-Proto`. So `Host: mcp.example.com` matches
//!   `https://mcp.example.com/mcp` also behind a TLS-terminating proxy that keeps `Host`.
//! - **Forwarded headers.** `X-Forwarded-Host` / `X-Forwarded-Proto` are honoured only when the
//!   TCP peer (axum `ConnectInfo<SocketAddr>`) is a configured trusted proxy. The **last** value
//!   is used: a proxy that appends puts its own value last, so anything a client injected
//!   earlier in the list is never believed.
//! - **Client address** ([`HostGuard::client_ip`], for the per-address rate limit): the TCP peer,
//!   or, when the peer is a trusted proxy, the right-most `X-Forwarded-For` entry that is not
//!   itself a trusted proxy. Walking from the right means every entry believed was appended by a
//!   proxy we trust; whatever a client wrote to the left of its own address is never read.
//!   `Forwarded` (RFC 7239) is not read: a proxy that manages only `X-Forwarded-For` passes a
//!   client's `Forwarded` through unchanged, and reading both would let that client choose.
//! - **Origin.** Absent → allowed (non-browser clients send none; B2 only covers a present
//!   Origin). Present → must equal an allowed `(scheme, host, port)`; defaults are the resource's
//!   origin plus the loopback origins in loopback mode; `null` is refused unless configured.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::header::{HOST, ORIGIN};
use http::uri::Authority;
use http::{HeaderMap, HeaderName, Request};

use crate::http::challenge::Rejection;
use crate::resource::ResourceUrl;

const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A configuration value the guard cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardConfigError {
    /// An allowed host is not `host` or `host:port`.
    #[error("invalid allowed host {0:?}: expected host or host:port")]
    Host(String),
    /// An allowed origin is not `scheme://host[:port|:*]` or `null`.
    #[error("invalid allowed origin {0:?}: expected scheme://host[:port] (or :* for any port)")]
    Origin(String),
    /// A trusted proxy is not an IP address or CIDR block.
    #[error("invalid trusted proxy {0:?}: expected an IP address or CIDR block")]
    Proxy(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    host: String,
    /// `None`: any port (only for configured entries written without a port).
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedOrigin {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: Option<u16>,
    },
}

/// An IP address or CIDR block (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ip` or `ip/prefix`.
    pub fn parse(s: &str) -> Result<Self, GuardConfigError> {
        let err = || GuardConfigError::Proxy(s.to_owned());
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| err())?)),
            None => (s, None),
        };
        let addr: IpAddr = ip.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(err());
        }
        Ok(Self {
            addr: addr.to_canonical(),
            prefix,
        })
    }

    /// True when `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// Settings for [`HostGuard::new`].
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    /// Extra allowed hosts (`host` = any port, `host:port`, `[v6]:port`).
    pub allowed_hosts: Vec<String>,
    /// Extra allowed origins (`https://app.example.com`, `http://localhost:*`, `null`).
    pub allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-Host`/`-Proto`/`-For` are believed.
    pub trusted_proxies: Vec<String>,
    /// The listener address; a loopback address enables the loopback names for its port.
    pub listen_addr: Option<SocketAddr>,
    /// Accept any `Host` (weakens DNS-rebinding protection; logs a warning).
    pub dangerous_allow_any_host: bool,
}

/// The Host/Origin guard. Built once; [`HostGuard::check`] allocates nothing on success except
/// when lower-casing a mixed-case host.
#[derive(Debug, Clone)]
pub struct HostGuard {
    hosts: Vec<AllowedHost>,
    any_host: bool,
    origins: Vec<AllowedOrigin>,
    proxies: Vec<IpNet>,
    default_scheme: &'static str,
}

impl HostGuard {
    /// Builds the guard for `resource` with `config`.
    pub fn new(resource: &ResourceUrl, config: &GuardConfig) -> Result<Self, GuardConfigError> {
        let url = resource.url();
        let scheme: &'static str = if url.scheme() == "https" {
            "https"
        } else {
            "http"
        };
        let host = normalize_host(url.host_str().unwrap_or_default()).into_owned();
        let port = url.port_or_known_default();
        let mut hosts = vec![AllowedHost {
            host: host.clone(),
            port,
        }];
        let mut origins = vec![AllowedOrigin::Tuple {
            scheme: scheme.to_owned(),
            host: host.clone(),
            port,
        }];

        let mut loopback_ports = Vec::new();
        if resource.is_loopback() {
            loopback_ports.push(port);
        }
        if let Some(addr) = config.listen_addr.filter(|a| a.ip().is_loopback()) {
            loopback_ports.push(Some(addr.port()));
        }
        for port in loopback_ports {
            for name in LOOPBACK_NAMES {
                let h = AllowedHost {
                    host: name.to_owned(),
                    port,
                };
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
                let o = AllowedOrigin::Tuple {
                    scheme: scheme.to_owned(),
                    host: name.to_owned(),
                    port,
                };
                if !origins.contains(&o) {
                    origins.push(o);
                }
            }
        }
        for h in &config.allowed_hosts {
            hosts.push(parse_allowed_host(h)?);
        }
        for o in &config.allowed_origins {
            let o = parse_allowed_origin(o)?;
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        let proxies = config
            .trusted_proxies
            .iter()
            .map(|p| IpNet::parse(p))
            .collect::<Result<_, _>>()?;
        if config.dangerous_allow_any_host {
            tracing::warn!(
                "dangerous_allow_any_host: Host validation is off; DNS-rebinding protection \
                 relies on the Origin check alone"
            );
        }
        Ok(Self {
            hosts,
            any_host: config.dangerous_allow_any_host,
            origins,
            proxies,
            default_scheme: scheme,
        })
    }

    /// Checks the request's Host and Origin.
    pub fn check<B>(&self, req: &Request<B>) -> Result<(), Rejection> {
        let headers = req.headers();
        let trusted = !self.proxies.is_empty()
            && req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(peer)| {
                    self.proxies.iter().any(|n| n.contains(peer.ip()))
                });

        if !self.any_host {
            let forwarded_host = if trusted {
                last_value(headers, &X_FORWARDED_HOST)
            } else {
                None
            };
            let authority = match forwarded_host {
                Some(v) => parse_authority(v).ok_or(Rejection::MalformedHost)?,
                None => request_authority(req)?,
            };
            let scheme = trusted
                .then(|| last_value(headers, &X_FORWARDED_PROTO))
                .flatten()
                .map(str::to_ascii_lowercase);
            let default_port = match scheme.as_deref().unwrap_or(self.default_scheme) {
                "https" => 443,
                _ => 80,
            };
            let host = normalize_host(authority.host());
            let port = authority.port_u16().unwrap_or(default_port);
            let allowed = self
                .hosts
                .iter()
                .any(|a| a.host == host && a.port.is_none_or(|p| p == port));
            if !allowed {
                return Err(Rejection::HostNotAllowed);
            }
        }
        self.check_origin(headers)
    }

    /// The client's address: the TCP peer (axum `ConnectInfo<SocketAddr>`), or behind trusted
    /// proxies the right-most `X-Forwarded-For` entry that is not a trusted proxy (see the
    /// module docs). An entry that is not an address ends the walk at the proxy that wrote it.
    /// `None` when the server provides no peer address.
    pub fn client_ip<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let ConnectInfo(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>()?;
        let mut client = peer.ip().to_canonical();
        if !self.is_proxy(client) {
            return Some(client);
        }
        for line in req.headers().get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(text) = line.to_str() else {
                return Some(client);
            };
            for entry in text.rsplit(',') {
                let Some(ip) = parse_forwarded_for(entry.trim()) else {
                    return Some(client);
                };
                client = ip;
                if !self.is_proxy(ip) {
                    return Some(ip);
                }
            }
        }
        Some(client)
    }

    fn is_proxy(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|n| n.contains(ip))
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let mut values = headers.get_all(ORIGIN).iter();
        let Some(value) = values.next() else {
            return Ok(());
        };
        if values.next().is_some() {
            return Err(Rejection::OriginNotAllowed);
        }
        let origin = value
            .to_str()
            .ok()
            .and_then(parse_origin)
            .ok_or(Rejection::OriginNotAllowed)?;
        let allowed = self.origins.iter().any(|a| match (a, &origin) {
            (AllowedOrigin::Null, RequestOrigin::Null) => true,
            (
                AllowedOrigin::Tuple { scheme, host, port },
                RequestOrigin::Tuple {
                    scheme: s,
                    host: h,
                    port: p,
                },
            ) => scheme == s && host == h && port.is_none_or(|port| Some(port) == *p),
            _ => false,
        });
        if allowed {
            Ok(())
        } else {
            Err(Rejection::OriginNotAllowed)
        }
    }
}

/// The authority the request names: `Host`, or the target's authority (HTTP/2 `:authority`,
/// absolute-form); both present must agree (RFC 9112 §3.2.2, RFC 9113 §8.3.1).
fn request_authority<B>(req: &Request<B>) -> Result<Authority, Rejection> {
    let mut host_values = req.headers().get_all(HOST).iter();
    let host = host_values.next();
    if host_values.next().is_some() {
        return Err(Rejection::MalformedHost);
    }
    let host = match host {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(parse_authority)
                .ok_or(Rejection::MalformedHost)?,
        ),
        None => None,
    };
    match (host, req.uri().authority()) {
        (Some(h), Some(t)) => {
            if h.as_str().eq_ignore_ascii_case(t.as_str()) {
                Ok(h)
            } else {
                Err(Rejection::MalformedHost)
            }
        }
        (Some(h), None) => Ok(h),
        (None, Some(t)) if !t.as_str().contains('@') => Ok(t.clone()),
        _ => Err(Rejection::MalformedHost),
    }
}

/// `host[:port]` without userinfo.
fn parse_authority(s: &str) -> Option<Authority> {
    let s = s.trim();
    if s.is_empty() || s.contains('@') {
        return None;
    }
    Authority::try_from(s).ok()
}

/// The last element of the last header value (comma-separated lists).
fn last_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let v = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = v.rsplit(',').next()?.trim();
    (!last.is_empty()).then_some(last)
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`, as some load balancers write them).
fn parse_forwarded_for(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

/// Lower-case, brackets removed (`[::1]` → `::1`).
fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(h.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(h)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

fn parse_allowed_host(s: &str) -> Result<AllowedHost, GuardConfigError> {
    let a = parse_authority(s).ok_or_else(|| GuardConfigError::Host(s.to_owned()))?;
    Ok(AllowedHost {
        host: normalize_host(a.host()).into_owned(),
        port: a.port_u16(),
    })
}

fn parse_allowed_origin(s: &str) -> Result<AllowedOrigin, GuardConfigError> {
    let err = || GuardConfigError::Origin(s.to_owned());
    if s == "null" {
        return Ok(AllowedOrigin::Null);
    }
    let (scheme, rest) = s.split_once("://").ok_or_else(err)?;
    let (rest, any_port) = match rest.strip_suffix(":*") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let Some(RequestOrigin::Tuple { scheme, host, port }) = parse_origin_parts(scheme, rest) else {
        return Err(err());
    };
    Ok(AllowedOrigin::Tuple {
        scheme,
        host,
        port: if any_port { None } else { port },
    })
}

#[derive(Debug, PartialEq, Eq)]
enum RequestOrigin {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: Option<u16>,
    },
}

/// RFC 6454 §7.1: `scheme "://" host [ ":" port ]`, or `null`.
fn parse_origin(s: &str) -> Option<RequestOrigin> {
    if s == "null" {
        return Some(RequestOrigin::Null);
    }
    let (scheme, rest) = s.split_once("://")?;
    parse_origin_parts(scheme, rest)
}

fn parse_origin_parts(scheme: &str, rest: &str) -> Option<RequestOrigin> {
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || rest.contains('/') {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let a = parse_authority(rest)?;
    let port = a.port_u16().or_else(|| default_port(&scheme));
    Some(RequestOrigin::Tuple {
        host: normalize_host(a.host()).into_owned(),
        scheme,
        port,
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn guard(resource: &str, config: GuardConfig) -> HostGuard {
        HostGuard::new(&ResourceUrl::parse(resource).unwrap(), &config).unwrap()
    }

    fn req(host: Option<&str>, origin: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri("/mcp");
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        b.body(()).unwrap()
    }

    fn check(g: &HostGuard, host: Option<&str>, origin: Option<&str>) -> Result<(), Rejection> {
        g.check(&req(host, origin))
    }

    use Rejection::{HostNotAllowed, MalformedHost, OriginNotAllowed};

    // B2 and DNS rebinding: Host table for a public resource.
    #[test]
    fn host_rules_public_resource() {
        let g = guard("https://mcp.example.com/mcp", GuardConfig::default());
        let cases: &[(Option<&str>, Result<(), Rejection>)] = &[
            (Some("mcp.example.com"), Ok(())),
            (Some("MCP.Example.COM"), Ok(())),
            (Some("mcp.example.com:443"), Ok(())),
            (Some("mcp.example.com:8443"), Err(HostNotAllowed)),
            (Some("evil.example"), Err(HostNotAllowed)),
            (Some("localhost"), Err(HostNotAllowed)), // loopback names only in loopback mode
            (Some("127.0.0.1"), Err(HostNotAllowed)),
            (Some("user@mcp.example.com"), Err(MalformedHost)),
            (Some("mcp.example.com/x"), Err(MalformedHost)),
            (Some(""), Err(MalformedHost)),
            (None, Err(MalformedHost)),
        ];
        for (host, want) in cases {
            assert_eq!(&check(&g, *host, None), want, "{host:?}");
        }
    }

    #[test]
    fn host_rules_loopback_resource_and_listen_addr() {
        let g = guard("http://127.0.0.1:8080/mcp", GuardConfig::default());
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "LOCALHOST:8080",
        ] {
            assert_eq!(check(&g, Some(ok), None), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1:8081",
            "localhost",
            "127.0.0.1",
            "evil.example:8080",
        ] {
            assert_eq!(check(&g, Some(bad), None), Err(HostNotAllowed), "{bad}");
        }
        // A public resource served on a loopback listener (local testing behind a tunnel).
        let g = guard(
            "https://mcp.example.com/mcp",
            GuardConfig {
                listen_addr: Some("127.0.0.1:9000".parse().unwrap()),
                ..Default::default()
            },
        );
        assert_eq!(check(&g, Some("localhost:9000"), None), Ok(()));
        assert_eq!(check(&g, Some("localhost:9001"), None), Err(HostNotAllowed));
    }

    #[test]
    fn configured_hosts_with_and_without_port() {
        let g = guard(
            "https://mcp.example.com/mcp",
            GuardConfig {
                allowed_hosts: vec!["internal.lan".into(), "alt.example:8443".into()],
                ..Default::default()
            },
        );
        assert_eq!(check(&g, Some("internal.lan:1234"), None), Ok(()));
        assert_eq!(check(&g, Some("alt.example:8443"), None), Ok(()));
        assert_eq!(check(&g, Some("alt.example"), None), Err(HostNotAllowed));
        assert!(
            HostGuard::new(
                &ResourceUrl::parse("https://h/mcp").unwrap(),
                &GuardConfig {
                    allowed_hosts: vec!["a b".into()],
                    ..Default::default()
                }
            )
            .is_err()
        );
    }

    // HTTP/2 `:authority` (target authority) and its agreement with Host.
    #[test]
    fn authority_from_target_must_agree_with_host() {
        let g = guard("https://mcp.example.com/mcp", GuardConfig::default());
        let r = Request::builder()
            .uri("https://mcp.example.com/mcp")
            .body(())
            .unwrap();
        assert_eq!(g.check(&r), Ok(()));
        let r = Request::builder()
            .uri("https://evil.example/mcp")
            .body(())
            .unwrap();
        assert_eq!(g.check(&r), Err(HostNotAllowed));
        let r = Request::builder()
            .uri("https://evil.example/mcp")
            .header(HOST, "mcp.example.com")
            .body(())
            .unwrap();
        assert_eq!(g.check(&r), Err(MalformedHost));
        let mut r = req(Some("mcp.example.com"), None);
        r.headers_mut()
            .append(HOST, HeaderValue::from_static("mcp.example.com"));
        assert_eq!(g.check(&r), Err(MalformedHost));
    }

    // B2: a present Origin that is not allowed → 403; absent Origin passes.
    #[test]
    fn origin_rules() {
        let g = guard(
            "https://mcp.example.com/mcp",
            GuardConfig {
                allowed_origins: vec![
                    "https://app.example.com".into(),
                    "http://localhost:*".into(),
                ],
                ..Default::default()
            },
        );
        let h = Some("mcp.example.com");
        let cases: &[(&str, Result<(), Rejection>)] = &[
            ("https://mcp.example.com", Ok(())),
            ("https://mcp.example.com:443", Ok(())),
            ("https://app.example.com", Ok(())),
            ("http://localhost:5173", Ok(())),
            ("http://localhost", Ok(())),
            ("http://mcp.example.com", Err(OriginNotAllowed)), // scheme differs
            ("https://mcp.example.com:444", Err(OriginNotAllowed)),
            ("https://evil.example", Err(OriginNotAllowed)),
            (
                "https://app.example.com.evil.example",
                Err(OriginNotAllowed),
            ),
            ("null", Err(OriginNotAllowed)),
            ("https://mcp.example.com/", Err(OriginNotAllowed)),
            ("garbage", Err(OriginNotAllowed)),
        ];
        for (origin, want) in cases {
            assert_eq!(&check(&g, h, Some(origin)), want, "{origin}");
        }
        assert_eq!(check(&g, h, None), Ok(()));
        let mut r = req(h, Some("https://mcp.example.com"));
        r.headers_mut()
            .append(ORIGIN, HeaderValue::from_static("https://mcp.example.com"));
        assert_eq!(g.check(&r), Err(OriginNotAllowed));
        let r = Request::builder()
            .uri("/mcp")
            .header(HOST, "mcp.example.com")
            .header(ORIGIN, HeaderValue::from_bytes(b"https://\xff").unwrap())
            .body(())
            .unwrap();
        assert_eq!(g.check(&r), Err(OriginNotAllowed));
    }

    #[test]
    fn loopback_origins_in_loopback_mode() {
        let g = guard("http://localhost:3000/mcp", GuardConfig::default());
        let h = Some("localhost:3000");
        assert_eq!(check(&g, h, Some("http://127.0.0.1:3000")), Ok(()));
        assert_eq!(check(&g, h, Some("http://[::1]:3000")), Ok(()));
        assert_eq!(
            check(&g, h, Some("http://localhost:3001")),
            Err(OriginNotAllowed)
        );
    }

    // The client address: the peer, or behind trusted proxies the right-most X-Forwarded-For
    // entry that is not a trusted proxy; nothing a client wrote left of that is read.
    #[test]
    fn client_address_table() {
        let g = guard(
            "https://mcp.example.com/mcp",
            GuardConfig {
                trusted_proxies: vec!["10.0.0.0/8".into(), "2001:db8:ffff::/48".into()],
                ..Default::default()
            },
        );
        let client = |peer: Option<&str>, xff: &[&str]| {
            let mut r = req(Some("mcp.example.com"), None);
            for line in xff {
                r.headers_mut()
                    .append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
            }
            if let Some(peer) = peer {
                r.extensions_mut()
                    .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            }
            g.client_ip(&r).map(|ip| ip.to_string())
        };
        let some = |s: &str| Some(s.to_owned());
        let cases: &[(Option<&str>, &[&str], Option<String>)] = &[
            // No peer address: nothing to key on.
            (None, &["198.51.100.1"], None),
            // Untrusted peer: its X-Forwarded-For is ignored.
            (Some("192.0.2.9:1"), &["198.51.100.1"], some("192.0.2.9")),
            (Some("[::ffff:192.0.2.9]:1"), &[], some("192.0.2.9")),
            // Trusted peer without the header: the proxy itself.
            (Some("10.0.0.1:1"), &[], some("10.0.0.1")),
            (Some("10.0.0.1:1"), &["198.51.100.1"], some("198.51.100.1")),
            // The right-most entry the proxy appended wins over what the client wrote.
            (
                Some("10.0.0.1:1"),
                &["203.0.113.7, 198.51.100.1"],
                some("198.51.100.1"),
            ),
            // Several lines are one list, in order.
            (
                Some("10.0.0.1:1"),
                &["203.0.113.7", "198.51.100.1"],
                some("198.51.100.1"),
            ),
            // Trusted hops are skipped.
            (
                Some("10.0.0.1:1"),
                &["198.51.100.1, 10.9.9.9"],
                some("198.51.100.1"),
            ),
            (
                Some("[2001:db8:ffff::1]:1"),
                &["2001:db8:1::7, 2001:db8:ffff::2"],
                some("2001:db8:1::7"),
            ),
            // Ports as some balancers write them.
            (
                Some("10.0.0.1:1"),
                &["198.51.100.1:4711"],
                some("198.51.100.1"),
            ),
            (
                Some("10.0.0.1:1"),
                &["[2001:db8::5]:4711"],
                some("2001:db8::5"),
            ),
            // Garbage ends the walk at the hop that wrote it: the client cannot pick a key.
            (
                Some("10.0.0.1:1"),
                &["198.51.100.1, unknown"],
                some("10.0.0.1"),
            ),
            (Some("10.0.0.1:1"), &["unknown, 10.9.9.9"], some("10.9.9.9")),
            // Only proxies: the left-most of them.
            (
                Some("10.0.0.1:1"),
                &["10.7.7.7, 10.9.9.9"],
                some("10.7.7.7"),
            ),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(&client(*peer, xff), want, "{peer:?} {xff:?}");
        }
    }

    // X-Forwarded-Host is believed only from a trusted proxy, and only its last value.
    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let g = guard(
            "https://mcp.example.com/mcp",
            GuardConfig {
                trusted_proxies: vec!["10.0.0.0/8".into()],
                ..Default::default()
            },
        );
        let forwarded = |peer: &str, xfh: &str| {
            let mut r = req(Some("backend:8080"), None);
            r.headers_mut()
                .insert(X_FORWARDED_HOST, HeaderValue::from_str(xfh).unwrap());
            r.headers_mut()
                .insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
            r.extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            g.check(&r)
        };
        assert_eq!(forwarded("10.1.2.3:5555", "mcp.example.com"), Ok(()));
        assert_eq!(
            forwarded("[::ffff:10.1.2.3]:5555", "mcp.example.com"),
            Ok(())
        );
        assert_eq!(
            forwarded("10.1.2.3:5555", "mcp.example.com, evil.example"),
            Err(HostNotAllowed)
        );
        assert_eq!(
            forwarded("10.1.2.3:5555", "evil.example, mcp.example.com"),
            Ok(())
        );
        // Untrusted peer: X-Forwarded-Host ignored, the backend Host is judged (and refused).
        assert_eq!(
            forwarded("192.168.1.1:5555", "mcp.example.com"),
            Err(HostNotAllowed)
        );
        // No ConnectInfo at all: never trusted.
        let mut r = req(Some("backend:8080"), None);
        r.headers_mut().insert(
            X_FORWARDED_HOST,
            HeaderValue::from_static("mcp.example.com"),
        );
        assert_eq!(g.check(&r), Err(HostNotAllowed));
    }

    #[test]
    fn ip_nets() {
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.255.0.1".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        let n = IpNet::parse("192.168.1.128/25").unwrap();
        assert!(n.contains("192.168.1.200".parse().unwrap()));
        assert!(!n.contains("192.168.1.100".parse().unwrap()));
        let n = IpNet::parse("::1").unwrap();
        assert!(n.contains("::1".parse().unwrap()));
        assert!(!n.contains("127.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::1/129"] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dangerous_allow_any_host_still_checks_origin() {
        let g = guard(
            "https://mcp.example.com/mcp",
            GuardConfig {
                dangerous_allow_any_host: true,
                ..Default::default()
            },
        );
        assert_eq!(check(&g, Some("anything.example"), None), Ok(()));
        assert_eq!(
            check(&g, Some("anything.example"), Some("https://evil.example")),
            Err(OriginNotAllowed)
        );
    }
}
