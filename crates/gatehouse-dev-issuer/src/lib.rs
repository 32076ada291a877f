//! # gatehouse-dev-issuer — a development-only OAuth 2.1 authorization server
//!
//! **Never use this in production.** It exists so that the Gatehouse demo and tests have a
//! real, standards-shaped token issuer on loopback without installing Keycloak or Node.
//!
//! What it does:
//! - `POST /token`: the `client_credentials` grant (RFC 6749 §4.4) with `client_secret_basic`
//!   or `client_secret_post`; the RFC 8707 `resource` parameter is **required** and becomes the
//!   token's `aud`; `scope` defaults to all scopes the client may have, and asking for more is
//!   `invalid_scope`.
//! - `POST /token` with token exchange (RFC 8693), only for clients with an exchange policy
//!   ([`DevClient::with_token_exchange`]): a resource server trades an access token that was
//!   addressed to it for one addressed to a target it may call, on behalf of the same subject,
//!   with narrowed scopes and an `act` claim naming it ([`DevIssuer::exchange`]).
//! - Tokens are RFC 9068 JWT access tokens shaped like oidc-provider's: header
//!   `{alg, typ: "at+jwt", kid}`, claims `iss, sub, aud, client_id, scope, iat, exp, jti` and an
//!   optional tenant claim. ES256 by default, RS256 on request.
//! - `GET /jwks`, RFC 8414 metadata at `/.well-known/oauth-authorization-server` and the same
//!   document at `/.well-known/openid-configuration`.
//! - `POST /introspect` (RFC 7662) for configured resource servers, for its own tokens.
//!
//! With demo users configured ([`DevIssuerConfig::users`], [`DevUser`]) it also runs the
//! interactive flows MCP clients use, so a browser user can sign in:
//! - `GET /authorize`: the authorization code flow (OAuth 2.1 §4.1) with PKCE S256 only
//!   (RFC 7636), a required `resource` (RFC 8707) that becomes `aud`, and an HTML sign-in page
//!   where the user picks a demo user — **no password** — and approves or denies. The
//!   redirect carries `iss` (RFC 9207). Granted scopes are the requested ones the user may
//!   grant; asking again for more is a step-up.
//! - `POST /token` with `authorization_code` (single-use, 60-second codes; a replay revokes
//!   the refresh tokens the code produced) and `refresh_token` (rotated on every use; reusing
//!   a rotated one revokes its whole family). `openid` yields an ID token.
//! - `POST /register`: dynamic client registration (RFC 7591), public or confidential clients,
//!   in memory and bounded.
//! - Client ID metadata documents: an `https` (or loopback `http`) URL as `client_id` is
//!   fetched, checked and cached for a few minutes.
//! - CORS on the metadata, JWKS, token and registration endpoints, for browser clients.
//!
//! What it deliberately does not do: no passwords or sessions (every sign-in is one click), no
//! revocation or userinfo endpoint, no client management (RFC 7592), no consent memory, no
//! `plain` PKCE, no implicit or password grants. It binds loopback addresses only.
//!
//! ```no_run
//! use gatehouse_dev_issuer::{DevClient, DevIssuerConfig, banner, serve};
//! # async fn demo() -> Result<(), gatehouse_dev_issuer::DevIssuerError> {
//! let config = DevIssuerConfig {
//!     clients: vec![DevClient::new("agent", "dev-secret", ["invoices:read"]).with_tenant("acme")],
//!     ..DevIssuerConfig::default()
//! };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! eprintln!("{}", banner("http://127.0.0.1:9000"));
//! serve(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![warn(missing_docs)]

mod clients;
mod config;
mod grants;
mod http;
mod interactive;
mod issuer;
mod loopback;
mod page;
mod rules;

use std::future::Future;

use axum::serve::ListenerExt;

pub use clients::DEFAULT_METADATA_DOCUMENT_TIMEOUT;
pub use config::{
    ClientSecret, DEFAULT_TENANT_CLAIM, DEFAULT_TOKEN_TTL, DevClient, DevIssuerConfig,
    DevResourceServer, DevUser, SigningAlg,
};
pub use gatehouse::jws::{KeyError, SigningKey};
pub use http::router;
pub use interactive::{CODE_TTL, MAX_REGISTERED_CLIENTS, REFRESH_TTL};
pub use issuer::{
    ACCESS_TOKEN_TYPE, Clock, DevIssuer, DevIssuerBuilder, IssuedToken, TOKEN_EXCHANGE_GRANT,
    TokenError,
};
pub use loopback::{DevIssuerError, ensure_loopback};

/// The warning printed at start-up. Loud on purpose: a development issuer reachable by others
/// would mint valid tokens for anyone who reads its configuration.
pub fn banner(issuer: &str) -> String {
    let lines = [
        "WARNING: gatehouse-dev-issuer is a DEVELOPMENT authorization server.",
        "It holds client secrets in plain configuration, generates throwaway keys",
        "and signs in demo users without passwords. NEVER use it in production.",
        &format!("Issuer: {issuer}"),
    ];
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let rule = "!".repeat(width + 6);
    let mut out = format!("{rule}\n");
    for l in lines {
        out.push_str(&format!("!! {l:<width$} !!\n"));
    }
    out.push_str(&rule);
    out
}

/// Builds the issuer for `listener` from `config` and serves it until `shutdown` completes.
/// Refuses non-loopback listeners; the issuer defaults to `http://<listener address>`.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    config: DevIssuerConfig,
    shutdown: F,
) -> Result<(), DevIssuerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let issuer = DevIssuer::for_listener(&listener, config)?;
    serve_issuer(listener, issuer, shutdown).await
}

/// Serves an already built issuer (e.g. one the caller also uses to [`DevIssuer::mint`]).
pub async fn serve_issuer<F>(
    listener: tokio::net::TcpListener,
    issuer: DevIssuer,
    shutdown: F,
) -> Result<(), DevIssuerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    ensure_loopback(&listener)?;
    for line in banner(issuer.issuer()).lines() {
        tracing::warn!("{line}");
    }
    let listener = listener.tap_io(|tcp| {
        // Small request/response exchanges: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(issuer))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_is_loud_and_names_the_issuer() {
        let b = banner("http://127.0.0.1:9");
        assert!(b.contains("NEVER use it in production"));
        assert!(b.contains("http://127.0.0.1:9"));
        let widths: Vec<_> = b.lines().map(|l| l.chars().count()).collect();
        assert!(
            widths.windows(2).all(|w| w[0] == w[1]),
            "box lines have equal width"
        );
    }
}
