//! The HTTP surface: `/token` (client credentials and token exchange), `/jwks`, the two
//! metadata documents and `/introspect`.
//!
//! All OAuth errors leave through [`OAuthError`], the one place that knows RFC 6749 §5.2 status
//! codes and headers.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};
use url::form_urlencoded;

use crate::config::DevClient;
use crate::issuer::{ACCESS_TOKEN_TYPE, DevIssuer, TOKEN_EXCHANGE_GRANT, TokenError};

/// Token requests are a handful of short parameters; refuse anything large before parsing.
const MAX_BODY: usize = 16 * 1024;

/// Builds the router for `issuer` (no listener; usable with `tower::ServiceExt::oneshot`).
pub fn router(issuer: DevIssuer) -> Router {
    let mut r = Router::new()
        .route("/token", post(token))
        .route("/jwks", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata));
    if issuer.introspection_endpoint().is_some() {
        r = r.route("/introspect", post(introspect));
    }
    r.layer(DefaultBodyLimit::max(MAX_BODY)).with_state(issuer)
}

/// An RFC 6749 §5.2 error response. Descriptions are fixed strings: nothing from the request
/// (and never a secret) is echoed back.
#[derive(Debug)]
struct OAuthError {
    code: &'static str,
    description: &'static str,
}

impl OAuthError {
    fn new(code: &'static str, description: &'static str) -> Self {
        Self { code, description }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        // RFC 6749 §5.2: 400, except invalid_client which MAY be 401 and then MUST carry a
        // WWW-Authenticate header for the scheme the client should use.
        let status = if self.code == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        let mut resp = (
            status,
            no_store(),
            axum::Json(json!({"error": self.code, "error_description": self.description})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gatehouse-dev-issuer\""),
            );
        }
        resp
    }
}

impl From<TokenError> for OAuthError {
    fn from(e: TokenError) -> Self {
        let description = match e {
            TokenError::UnknownClient => "client authentication failed",
            TokenError::InvalidScope => "requested scope is invalid or not allowed for this client",
            TokenError::InvalidTarget("missing") => "the resource parameter is required",
            TokenError::InvalidTarget("not allowed for this client") => {
                "the client may not obtain a token for the requested target"
            }
            TokenError::InvalidTarget(_) => "resource must be an absolute URI without a fragment",
            TokenError::UnauthorizedClient => "the client may not use token exchange",
            TokenError::InvalidSubjectToken("not addressed to this client") => {
                "subject_token was not issued for the resource this client serves"
            }
            TokenError::InvalidSubjectToken(_) => {
                "subject_token is not a valid, unexpired access token of this issuer"
            }
        };
        Self::new(e.error_code(), description)
    }
}

/// RFC 6749 §5.1: responses carrying tokens or credentials MUST NOT be cached.
fn no_store() -> [(axum::http::HeaderName, HeaderValue); 2] {
    [
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

async fn jwks(State(issuer): State<DevIssuer>) -> Response {
    axum::Json(issuer.jwks()).into_response()
}

async fn metadata(State(issuer): State<DevIssuer>) -> Response {
    axum::Json(issuer.metadata()).into_response()
}

/// The parsed body of a form POST: each parameter at most once, except `resource` and
/// `audience`.
struct Form {
    params: HashMap<String, String>,
    resources: Vec<String>,
    audiences: Vec<String>,
}

impl Form {
    fn parse(headers: &HeaderMap, body: &Bytes) -> Result<Self, OAuthError> {
        // RFC 6749 §3.2 / RFC 7662 §2.1: parameters are sent as
        // application/x-www-form-urlencoded.
        let is_form = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::new(
                "invalid_request",
                "content type must be application/x-www-form-urlencoded",
            ));
        }
        let mut params = HashMap::new();
        let mut resources = Vec::new();
        let mut audiences = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            // RFC 8707 §2 and RFC 8693 §2.1 allow `resource` and `audience` to repeat;
            // RFC 6749 §3.2 forbids repeating any other parameter.
            if k == "resource" {
                resources.push(v.into_owned());
            } else if k == "audience" {
                audiences.push(v.into_owned());
            } else if params.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(OAuthError::new(
                    "invalid_request",
                    "a parameter is repeated",
                ));
            }
        }
        Ok(Self {
            params,
            resources,
            audiences,
        })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// The credentials presented by a client (RFC 6749 §2.3.1), before they are checked.
struct Credentials {
    id: String,
    secret: String,
}

/// Extracts `client_secret_basic` or `client_secret_post` credentials. Using both at once is
/// refused (RFC 6749 §2.3: "MUST NOT use more than one authentication method in each request").
fn credentials(headers: &HeaderMap, form: &Form) -> Result<Credentials, OAuthError> {
    let failed = || OAuthError::new("invalid_client", "client authentication failed");
    if let Some(value) = headers.get(AUTHORIZATION) {
        let basic = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| {
                let (id, secret) = s.split_once(':')?;
                // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
                Some(Credentials {
                    id: form_decode(id),
                    secret: form_decode(secret),
                })
            })
            .ok_or_else(failed)?;
        if form.get("client_secret").is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "use only one client authentication method",
            ));
        }
        if form.get("client_id").is_some_and(|id| id != basic.id) {
            return Err(OAuthError::new(
                "invalid_request",
                "client_id does not match",
            ));
        }
        return Ok(basic);
    }
    match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Ok(Credentials {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        _ => Err(failed()),
    }
}

fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `POST /token`: the client credentials grant (RFC 6749 §4.4) with resource indicators
/// (RFC 8707), and token exchange (RFC 8693) when some client has an exchange policy.
async fn token(State(issuer): State<DevIssuer>, headers: HeaderMap, body: Bytes) -> Response {
    match token_inner(&issuer, &headers, &body) {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(
                error = e.code,
                reason = e.description,
                "token request refused"
            );
            e.into_response()
        }
    }
}

fn token_inner(
    issuer: &DevIssuer,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, OAuthError> {
    let form = Form::parse(headers, body)?;
    let creds = credentials(headers, &form)?;
    let client = issuer
        .authenticate_client(&creds.id, &creds.secret)
        .ok_or_else(|| OAuthError::new("invalid_client", "client authentication failed"))?;
    // RFC 9449 §5: a proof binds the token to the client's key; a bad one is refused.
    let mut proofs = headers.get_all("dpop").iter();
    let dpop_jkt = match (proofs.next(), proofs.next()) {
        (None, _) => None,
        (Some(p), None) => Some(
            p.to_str()
                .ok()
                .and_then(|p| issuer.dpop_key(p).ok())
                .ok_or_else(|| {
                    OAuthError::new("invalid_dpop_proof", "the DPoP proof is invalid")
                })?,
        ),
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(
                "invalid_dpop_proof",
                "one DPoP proof at most",
            ));
        }
    };
    let body = match form.get("grant_type") {
        None => return Err(OAuthError::new("invalid_request", "grant_type is required")),
        Some("client_credentials") => {
            client_credentials(issuer, client, &form, dpop_jkt.as_deref())?
        }
        // Supported exactly when advertised in the metadata.
        Some(TOKEN_EXCHANGE_GRANT) if issuer.supports_token_exchange() => {
            token_exchange(issuer, client, &form)?
        }
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "this grant type is not supported",
            ));
        }
    };
    Ok((StatusCode::OK, no_store(), axum::Json(body)).into_response())
}

fn client_credentials(
    issuer: &DevIssuer,
    client: &DevClient,
    form: &Form,
    dpop_jkt: Option<&str>,
) -> Result<Value, OAuthError> {
    // One token has one audience here; several resources would need several tokens.
    if form.resources.len() > 1 {
        return Err(OAuthError::new(
            "invalid_target",
            "request one resource per token",
        ));
    }
    let resource = form.resources.first().map(String::as_str);
    let issued = issuer.issue_for(client, form.get("scope"), resource, dpop_jkt)?;
    Ok(json!({
        "access_token": issued.access_token,
        // RFC 9449 §5: a bound token's type is DPoP.
        "token_type": if dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }))
}

/// RFC 8693 §2.1: checks the request's shape, then leaves every decision about the subject
/// token, the target and the scope to [`DevIssuer::exchange`].
fn token_exchange(
    issuer: &DevIssuer,
    client: &DevClient,
    form: &Form,
) -> Result<Value, OAuthError> {
    let invalid = |description| OAuthError::new("invalid_request", description);
    match form.get("subject_token_type") {
        None => return Err(invalid("subject_token_type is required")),
        Some(ACCESS_TOKEN_TYPE) => {}
        Some(_) => return Err(invalid("only access tokens can be exchanged")),
    }
    let subject_token = form
        .get("subject_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("subject_token is required"))?;
    if form
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(invalid("only access tokens can be requested"));
    }
    // The actor is the authenticated client; a separate actor token is not supported.
    if form.get("actor_token").is_some() || form.get("actor_token_type").is_some() {
        return Err(invalid("actor_token is not supported"));
    }
    // `resource` and `audience` both name the target; together they must name exactly one.
    let mut targets: Vec<&str> = Vec::new();
    for t in form.resources.iter().chain(&form.audiences) {
        if !targets.contains(&t.as_str()) {
            targets.push(t);
        }
    }
    let target = match targets[..] {
        [one] => one,
        [] => {
            return Err(OAuthError::new(
                "invalid_target",
                "resource or audience is required",
            ));
        }
        _ => {
            return Err(OAuthError::new(
                "invalid_target",
                "request one target per token",
            ));
        }
    };
    let issued = issuer.exchange(&client.id, subject_token, target, form.get("scope"))?;
    // RFC 8693 §2.2.1.
    Ok(json!({
        "access_token": issued.access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }))
}

/// `POST /introspect` (RFC 7662 §2): only configured resource servers may ask.
async fn introspect(State(issuer): State<DevIssuer>, headers: HeaderMap, body: Bytes) -> Response {
    let result = (|| {
        let form = Form::parse(&headers, &body)?;
        let creds = credentials(&headers, &form)?;
        let rs = issuer
            .authenticate_resource_server(&creds.id, &creds.secret)
            .ok_or_else(|| OAuthError::new("invalid_client", "client authentication failed"))?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?;
        let answer: Value = issuer.introspect(token, Some(rs));
        Ok::<_, OAuthError>((StatusCode::OK, no_store(), axum::Json(answer)).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}
