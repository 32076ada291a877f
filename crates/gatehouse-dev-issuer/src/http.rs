//! The HTTP surface: `/token` (client credentials and token exchange; with users also the
//! authorization code and refresh token grants), `/jwks`, the two metadata documents,
//! `/introspect`, and with users `/authorize` (GET: the sign-in page, POST: the decision) and
//! `/register`.
//!
//! All OAuth errors of the JSON endpoints leave through [`OAuthError`], the one place that knows
//! RFC 6749 §5.2 status codes and headers. The authorization endpoint answers an untrusted
//! request with an HTML error page and a trusted one with a redirect (RFC 6749 §4.1.2.1).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, PRAGMA,
    WWW_AUTHENTICATE, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};
use url::{Url, form_urlencoded};

use crate::clients::{
    AuthMethod, OAuthClient, Refusal, form_action_source, is_metadata_document_url, redirect_host,
    redirect_uri_matches,
};
use crate::config::DevClient;
use crate::grants::{AuthorizeParams, TokenParams};
use crate::interactive::Decision;
use crate::issuer::{ACCESS_TOKEN_TYPE, DevIssuer, TOKEN_EXCHANGE_GRANT, TokenError};
use crate::page;

/// Token requests are a handful of short parameters; refuse anything large before parsing.
const MAX_BODY: usize = 16 * 1024;

/// Builds the router for `issuer` (no listener; usable with `tower::ServiceExt::oneshot`).
pub fn router(issuer: DevIssuer) -> Router {
    let mut public = Router::new()
        .route("/token", post(token))
        .route("/jwks", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata));
    if issuer.supports_user_login() {
        public = public.route("/register", post(register));
    }
    // Browser clients (MCP Inspector's web UI) discover, register and redeem codes with fetch()
    // from their own origin. Nothing here relies on cookies, so any origin may read the
    // answers; `Router::layer` (not `route_layer`) so that preflight OPTIONS reach it.
    let public = public.layer(cors());
    let mut r = Router::new().merge(public);
    if issuer.supports_user_login() {
        // A navigation, not a fetch: no CORS.
        r = r.route("/authorize", get(authorize).post(authorize_decision));
    }
    if issuer.introspection_endpoint().is_some() {
        r = r.route("/introspect", post(introspect));
    }
    r.layer(DefaultBodyLimit::max(MAX_BODY)).with_state(issuer)
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE, HeaderName::from_static("dpop")])
        .expose_headers([HeaderName::from_static("dpop-nonce"), WWW_AUTHENTICATE])
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

impl From<Refusal> for OAuthError {
    fn from(r: Refusal) -> Self {
        Self::new(r.code, r.description)
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
    let grant_type = form.get("grant_type");
    if issuer.supports_user_login()
        && matches!(grant_type, Some("authorization_code" | "refresh_token"))
    {
        return user_grant(issuer, headers, &form);
    }
    let creds = credentials(headers, &form)?;
    let client = issuer
        .authenticate_client(&creds.id, &creds.secret)
        .ok_or_else(|| OAuthError::new("invalid_client", "client authentication failed"))?;
    let dpop_jkt = dpop_jkt(issuer, headers)?;
    let body = match grant_type {
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

/// RFC 9449 §5: a proof binds the token to the client's key; a bad one is refused.
fn dpop_jkt(issuer: &DevIssuer, headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut proofs = headers.get_all("dpop").iter();
    Ok(match (proofs.next(), proofs.next()) {
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
    })
}

/// The authorization code and refresh token grants, for clients of the code flow.
fn user_grant(
    issuer: &DevIssuer,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response, OAuthError> {
    let client = authenticate_user_client(issuer, headers, form)?;
    let dpop_jkt = dpop_jkt(issuer, headers)?;
    let params = TokenParams {
        code: form.get("code"),
        redirect_uri: form.get("redirect_uri"),
        code_verifier: form.get("code_verifier"),
        refresh_token: form.get("refresh_token"),
        scope: form.get("scope"),
        resources: &form.resources,
    };
    let body = if form.get("grant_type") == Some("authorization_code") {
        issuer.redeem_code(&client, &params, dpop_jkt.as_deref())?
    } else {
        if !client.refresh {
            return Err(OAuthError::new(
                "unauthorized_client",
                "the client is not registered for the refresh_token grant",
            ));
        }
        issuer.refresh(&client, &params, dpop_jkt.as_deref())?
    };
    Ok((StatusCode::OK, no_store(), axum::Json(body)).into_response())
}

/// Client authentication for the code flow's clients, by their registered
/// `token_endpoint_auth_method`: a public client sends only `client_id` (OAuth 2.1 §3.2.1), a
/// confidential one its secret the registered way and no other.
fn authenticate_user_client(
    issuer: &DevIssuer,
    headers: &HeaderMap,
    form: &Form,
) -> Result<OAuthClient, OAuthError> {
    let failed = || OAuthError::new("invalid_client", "client authentication failed");
    let basic = headers.contains_key(AUTHORIZATION);
    if basic || form.get("client_secret").is_some() {
        let creds = credentials(headers, form)?;
        let method = if basic {
            AuthMethod::ClientSecretBasic
        } else {
            AuthMethod::ClientSecretPost
        };
        if let Some(c) = issuer.authenticate_registered(&creds.id, &creds.secret, method) {
            return Ok(c);
        }
        if issuer
            .authenticate_client(&creds.id, &creds.secret)
            .is_some()
        {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client may use only client_credentials",
            ));
        }
        return Err(failed());
    }
    let id = form.get("client_id").ok_or_else(failed)?;
    match issuer.registered_client(id) {
        Some(c) if c.auth == AuthMethod::None => Ok((*c).clone()),
        Some(_) => Err(failed()),
        None if is_metadata_document_url(id) => Ok(OAuthClient::metadata_document_client(id)),
        None => Err(failed()),
    }
}

/// `POST /register` (RFC 7591 §3.1): JSON client metadata in, client information out.
async fn register(State(issuer): State<DevIssuer>, headers: HeaderMap, body: Bytes) -> Response {
    let result = (|| {
        let is_json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        let doc = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(doc)) if is_json => doc,
            _ => {
                return Err(OAuthError::new(
                    "invalid_client_metadata",
                    "the body must be a JSON object sent as application/json",
                ));
            }
        };
        let info = issuer.register(&doc)?;
        Ok::<_, OAuthError>((StatusCode::CREATED, no_store(), axum::Json(info)).into_response())
    })();
    result.unwrap_or_else(|e| {
        tracing::info!(
            error = e.code,
            reason = e.description,
            "registration refused"
        );
        e.into_response()
    })
}

/// Headers of both authorization pages: never cached, never framed (clickjacking would let
/// another page press Approve), nothing loaded. `form_action` lists where the consent form may
/// post to and be redirected to.
fn page_response(status: StatusCode, html: String, form_action: &str) -> Response {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; \
         frame-ancestors 'none'"
    );
    let mut resp = (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    resp
}

fn error_page(message: &'static str) -> Response {
    tracing::info!(
        reason = message,
        "authorization request refused with an error page"
    );
    page_response(StatusCode::BAD_REQUEST, page::error(message), "'none'")
}

/// A redirect to the client's redirect URI with `params` added to its query.
fn redirect(status: StatusCode, redirect_uri: &str, params: &[(&str, String)]) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page("the redirect URI cannot be used");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut resp = status.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /authorize` (OAuth 2.1 §4.1.1): checks the client and redirect URI (errors: a page),
/// then the rest of the request (errors: a redirect), then shows the sign-in page.
async fn authorize(State(issuer): State<DevIssuer>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let mut params: HashMap<String, String> = HashMap::new();
    let mut resources = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "resource" {
            resources.push(v.into_owned());
        } else if params.insert(k.into_owned(), v.into_owned()).is_some() {
            // OAuth 2.1 §4.1.1 / RFC 6749 §3.1: parameters MUST NOT repeat.
            return error_page("a request parameter is repeated");
        }
    }
    let get = |k: &str| params.get(k).map(String::as_str);
    let Some(client_id) = get("client_id") else {
        return error_page("client_id is required");
    };
    let client = match issuer.resolve_client(client_id).await {
        Ok(c) => c,
        Err(message) => return error_page(message),
    };
    let (redirect_uri, sent) = match get("redirect_uri") {
        Some(r)
            if client
                .redirect_uris
                .iter()
                .any(|reg| redirect_uri_matches(reg, r)) =>
        {
            (r.to_owned(), true)
        }
        Some(_) => return error_page("redirect_uri is not registered for this client"),
        // OAuth 2.1 §4.1.1: optional only when exactly one is registered.
        None => match &client.redirect_uris[..] {
            [only] => (only.clone(), false),
            _ => return error_page("redirect_uri is required"),
        },
    };
    let p = AuthorizeParams {
        response_type: get("response_type"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        resources: &resources,
        scope: get("scope"),
        state: get("state"),
        nonce: get("nonce"),
    };
    match issuer.begin_authorization(&client, redirect_uri.clone(), sent, &p) {
        Ok((txn, pending)) => {
            let html = page::consent(&page::Consent {
                transaction: &txn,
                client: &pending.client_label,
                redirect_host: &redirect_host(&pending.redirect_uri),
                resource: &pending.resource,
                scopes: pending.scopes.as_deref(),
                users: issuer.users(),
            });
            let action = match form_action_source(&pending.redirect_uri) {
                Some(origin) => format!("'self' {origin}"),
                None => "'self'".to_owned(),
            };
            page_response(StatusCode::OK, html, &action)
        }
        Err(r) => {
            tracing::info!(
                error = r.code,
                reason = r.description,
                "authorization request refused"
            );
            let mut out = vec![
                ("error", r.code.to_owned()),
                ("error_description", r.description.to_owned()),
            ];
            if let Some(s) = get("state") {
                out.push(("state", s.to_owned()));
            }
            out.push(("iss", issuer.issuer().to_owned()));
            redirect(StatusCode::FOUND, &redirect_uri, &out)
        }
    }
}

/// `POST /authorize`: the sign-in page's answer — transaction id, user, decision.
async fn authorize_decision(
    State(issuer): State<DevIssuer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = Form::parse(&headers, &body) else {
        return error_page("the sign-in form is malformed");
    };
    let (Some(txn), Some(decision)) = (form.get("transaction"), form.get("decision")) else {
        return error_page("the sign-in form is incomplete");
    };
    match issuer.decide(txn, form.get("user"), decision) {
        // 303: the browser follows with a GET.
        Ok(Decision {
            redirect_uri,
            params,
        }) => redirect(StatusCode::SEE_OTHER, &redirect_uri, &params),
        Err(message) => error_page(message),
    }
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
