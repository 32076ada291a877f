//! Invariant: token exchange (RFC 8693) at the development issuer only ever turns an unexpired
//! access token that this issuer minted *for the exchanging client's own resource* into a token
//! for a target that client's policy names — same subject and tenant, `act` naming the client,
//! scopes never wider than the subject token's nor than the client's, lifetime never longer than
//! the subject token's. Every other exchange is refused with its RFC 6749 §5.2 / RFC 8693
//! §2.2.2 error code and a fixed description that echoes nothing from the request. Exercised
//! over real HTTP on a loopback socket.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_dev_issuer::{
    ACCESS_TOKEN_TYPE, DevClient, DevIssuer, DevIssuerConfig, DevIssuerError, SigningKey,
    TOKEN_EXCHANGE_GRANT, serve_issuer,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The MCP server the agent's tokens are for; `billing-mcp` serves it.
const MCP: &str = "http://127.0.0.1:3000/mcp";
/// A downstream API `billing-mcp` may exchange for; `ledger` serves it.
const LEDGER: &str = "http://127.0.0.1:4000/ledger";
/// Served by `reporting-mcp`.
const REPORTS: &str = "http://127.0.0.1:5000/reports";
/// Where `ledger` may go on to.
const ARCHIVE: &str = "http://127.0.0.1:6000/archive";

const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";

fn clients() -> Vec<DevClient> {
    vec![
        DevClient::new(
            "agent",
            "agent-secret",
            ["invoices:read", "invoices:write", "audit:read"],
        )
        .with_tenant("acme"),
        DevClient::new(
            "billing-mcp",
            "mcp-secret",
            ["invoices:read", "invoices:write", "ledger:read"],
        )
        .with_token_exchange(MCP, [LEDGER]),
        DevClient::new("reporting-mcp", "reports-secret", ["invoices:read"])
            .with_token_exchange(REPORTS, [LEDGER]),
        DevClient::new("ledger", "ledger-secret", ["invoices:read"])
            .with_token_exchange(LEDGER, [ARCHIVE]),
        DevClient::new("plain", "plain-secret", ["invoices:read"]),
    ]
}

/// A served issuer plus what the tests need to forge tokens with its own key.
struct Stack {
    base: String,
    http: reqwest::Client,
    /// PKCS#8 PEM of the served issuer's key.
    pem: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), DevIssuerError>>,
}

impl Stack {
    async fn start(clients: Vec<DevClient>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let pem = SigningKey::generate(Default::default())
            .unwrap()
            .to_pkcs8_pem()
            .unwrap();
        let issuer = issuer_with(&base, &pem, clients, 300);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_issuer(listener, issuer, async {
            let _ = stopped.await;
        }));
        Self {
            base,
            http: reqwest::Client::new(),
            pem,
            stop,
            server,
        }
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }

    /// Another (unserved) issuer instance with the same key and issuer URL, e.g. with another TTL.
    fn twin(&self, ttl_secs: u64) -> DevIssuer {
        issuer_with(&self.base, &self.pem, clients(), ttl_secs)
    }

    /// A `client_credentials` token for `agent` (all its scopes) addressed to `resource`.
    async fn agent_token(&self, resource: &str) -> String {
        let r = self
            .post(
                Auth::Basic("agent", "agent-secret"),
                &[("grant_type", "client_credentials"), ("resource", resource)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["access_token"].as_str().unwrap().to_owned()
    }

    async fn post(&self, auth: Auth<'_>, params: &[(&str, &str)]) -> Resp {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut req = self.http.post(format!("{}/token", self.base));
        match auth {
            Auth::Basic(id, secret) => req = req.basic_auth(id, Some(secret)),
            Auth::Post(id, secret) => {
                form.push(("client_id", id));
                form.push(("client_secret", secret));
            }
        }
        let resp = req.form(&form).send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    /// The served JWK Set.
    async fn jwks(&self) -> JwkSet {
        let resp = self
            .http
            .get(format!("{}/jwks", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Verifies `token` as a resource server for `aud` would: keys from the served JWKS.
    async fn verify(&self, token: &str, aud: &str) -> Value {
        let jwks = self.jwks().await;
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.alg, Algorithm::ES256);
        let key = DecodingKey::from_jwk(jwks.find(&header.kid.unwrap()).unwrap()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[aud]);
        v.set_issuer(&[&self.base]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .unwrap()
            .claims
    }

    /// The served issuer's private key for jsonwebtoken (PKCS#8 DER out of the PEM).
    fn encoding_key(&self) -> EncodingKey {
        let b64: String = self
            .pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        EncodingKey::from_ec_der(&STANDARD.decode(b64).unwrap())
    }

    fn kid(&self) -> String {
        SigningKey::from_pem(Default::default(), &self.pem)
            .unwrap()
            .kid()
            .to_owned()
    }

    /// Signs arbitrary claims as an `at+jwt` with the served issuer's own key.
    fn forge(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid());
        let key = self.encoding_key();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn issuer_with(base: &str, pem: &str, clients: Vec<DevClient>, ttl_secs: u64) -> DevIssuer {
    let config = DevIssuerConfig {
        issuer: Some(base.to_owned()),
        clients,
        token_ttl: std::time::Duration::from_secs(ttl_secs),
        ..DevIssuerConfig::default()
    };
    DevIssuer::with_key(
        config,
        SigningKey::from_pem(Default::default(), pem).unwrap(),
    )
    .unwrap()
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
}

const BILLING: Auth<'static> = Auth::Basic("billing-mcp", "mcp-secret");

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    json: Value,
}

/// A well-formed exchange of `subject` for `target` (as `resource`).
fn exchange<'a>(subject: &'a str, target: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("resource", target),
    ]
}

fn without<'a>(params: &[(&'a str, &'a str)], name: &str) -> Vec<(&'a str, &'a str)> {
    params.iter().copied().filter(|(k, _)| *k != name).collect()
}

fn with<'a>(params: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    let mut p = params.to_vec();
    p.push(extra);
    p
}

/// Asserts the fixed description, where one error code has several causes.
fn assert_reason(r: &Resp, description: &str, case: &str) {
    assert_eq!(r.json["error_description"], description, "{case}");
}

/// Asserts an RFC 6749 §5.2 error that issues nothing and echoes none of `secrets`.
fn assert_refused(r: &Resp, status: u16, code: &str, secrets: &[&str], case: &str) {
    assert_eq!(r.status, status, "{case}: {}", r.text);
    assert_eq!(r.json["error"], code, "{case}: {}", r.text);
    assert!(r.json["error_description"].is_string(), "{case}");
    assert!(r.json.get("access_token").is_none(), "{case}");
    assert_eq!(r.headers["cache-control"], "no-store", "{case}");
    for s in secrets {
        assert!(!r.text.contains(s), "{case}: response echoes request data");
    }
}

#[tokio::test]
async fn exchange_issues_a_delegated_token_for_the_target() {
    let stack = Stack::start(clients()).await;
    let subject = stack.agent_token(MCP).await;
    let subject_claims = stack.verify(&subject, MCP).await;

    let r = stack
        .post(
            BILLING,
            &with(&exchange(&subject, LEDGER), ("scope", "invoices:read")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    // RFC 8693 §2.2.1.
    assert_eq!(r.json["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["scope"], "invoices:read");
    let expires_in = r.json["expires_in"].as_u64().unwrap();
    assert!((1..=300).contains(&expires_in), "{expires_in}");

    let token = r.json["access_token"].as_str().unwrap();
    let claims = stack.verify(token, LEDGER).await;
    assert_eq!(claims["aud"], LEDGER);
    assert_eq!(claims["sub"], "agent", "the subject stays the subject");
    assert_eq!(claims["client_id"], "billing-mcp", "the exchanging client");
    assert_eq!(
        claims["act"],
        json!({"sub": "billing-mcp"}),
        "RFC 8693 §4.1"
    );
    assert_eq!(claims["scope"], "invoices:read");
    assert_eq!(
        claims["tenant"], "acme",
        "the subject's tenant carries over"
    );
    assert!(claims["exp"].as_u64().unwrap() <= subject_claims["exp"].as_u64().unwrap());
    assert_ne!(claims["jti"], subject_claims["jti"]);

    // The issued token is addressed to LEDGER: no longer usable at MCP.
    let jwks = stack.jwks().await;
    let mut at_mcp = Validation::new(Algorithm::ES256);
    at_mcp.set_audience(&[MCP]);
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    assert!(jsonwebtoken::decode::<Value>(token, &key, &at_mcp).is_err());
    stack.shutdown().await;
}

#[tokio::test]
async fn default_scope_is_the_subjects_scopes_the_client_may_request() {
    let stack = Stack::start(clients()).await;
    let subject = stack.agent_token(MCP).await;
    // client_secret_post, `audience` instead of `resource`, explicit requested_token_type.
    let params = with(
        &with(
            &without(&exchange(&subject, LEDGER), "resource"),
            ("audience", LEDGER),
        ),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
    );
    let r = stack
        .post(Auth::Post("billing-mcp", "mcp-secret"), &params)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The agent had invoices:read, invoices:write and audit:read; billing-mcp may not request
    // audit:read, and its own ledger:read was never the agent's.
    assert_eq!(r.json["scope"], "invoices:read invoices:write");
    let claims = stack
        .verify(r.json["access_token"].as_str().unwrap(), LEDGER)
        .await;
    assert_eq!(claims["scope"], "invoices:read invoices:write");

    // `resource` and `audience` naming the same target is one target.
    let r = stack
        .post(
            BILLING,
            &with(&exchange(&subject, LEDGER), ("audience", LEDGER)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    stack.shutdown().await;
}

#[tokio::test]
async fn exchanged_token_expires_no_later_than_its_subject() {
    let stack = Stack::start(clients()).await;
    // Same key and issuer, 60-second tokens; the served issuer's TTL is 300.
    let subject = stack.twin(60).mint("agent", &[], MCP).unwrap();
    let subject_exp = stack.verify(&subject, MCP).await["exp"].as_u64().unwrap();
    let r = stack.post(BILLING, &exchange(&subject, LEDGER)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["expires_in"].as_u64().unwrap() <= 60, "{}", r.text);
    let claims = stack
        .verify(r.json["access_token"].as_str().unwrap(), LEDGER)
        .await;
    assert_eq!(claims["exp"].as_u64().unwrap(), subject_exp);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_second_exchange_nests_the_prior_actor() {
    let stack = Stack::start(clients()).await;
    let subject = stack.agent_token(MCP).await;
    let r = stack.post(BILLING, &exchange(&subject, LEDGER)).await;
    let for_ledger = r.json["access_token"].as_str().unwrap().to_owned();
    let r = stack
        .post(
            Auth::Basic("ledger", "ledger-secret"),
            &exchange(&for_ledger, ARCHIVE),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let claims = stack
        .verify(r.json["access_token"].as_str().unwrap(), ARCHIVE)
        .await;
    assert_eq!(claims["sub"], "agent");
    assert_eq!(claims["client_id"], "ledger");
    assert_eq!(claims["scope"], "invoices:read");
    assert_eq!(
        claims["act"],
        json!({"sub": "ledger", "act": {"sub": "billing-mcp"}}),
        "current actor outermost, prior actor nested (RFC 8693 §4.1)"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn wrong_client_credentials_are_invalid_client() {
    let stack = Stack::start(clients()).await;
    let subject = stack.agent_token(MCP).await;
    let params = exchange(&subject, LEDGER);
    for (case, auth) in [
        ("basic", Auth::Basic("billing-mcp", "wrong-secret")),
        ("post", Auth::Post("billing-mcp", "wrong-secret")),
        ("unknown", Auth::Basic("ghost", "mcp-secret")),
    ] {
        let r = stack.post(auth, &params).await;
        assert_refused(&r, 401, "invalid_client", &[&subject, "wrong-secret"], case);
        assert!(r.headers.contains_key("www-authenticate"), "{case}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn client_without_exchange_policy_is_unauthorized_client() {
    let stack = Stack::start(clients()).await;
    let subject = stack.agent_token(MCP).await;
    for (id, secret) in [("plain", "plain-secret"), ("agent", "agent-secret")] {
        let r = stack
            .post(Auth::Basic(id, secret), &exchange(&subject, LEDGER))
            .await;
        assert_refused(&r, 400, "unauthorized_client", &[&subject, secret], id);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn target_outside_the_policy_or_malformed_is_invalid_target() {
    let stack = Stack::start(clients()).await;
    let subject = stack.agent_token(MCP).await;
    let base = exchange(&subject, LEDGER);
    let no_resource = without(&base, "resource");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("another API", exchange(&subject, REPORTS)),
        ("back to its own resource", exchange(&subject, MCP)),
        (
            "a prefix of the target",
            exchange(&subject, "http://127.0.0.1:4000/"),
        ),
        ("relative resource", exchange(&subject, "/ledger")),
        (
            "fragment",
            exchange(&subject, "http://127.0.0.1:4000/ledger#x"),
        ),
        (
            "logical audience",
            with(&no_resource, ("audience", "ledger")),
        ),
        ("missing target", no_resource.clone()),
        ("empty resource", exchange(&subject, "")),
        ("two targets", with(&base, ("audience", REPORTS))),
        ("two resources", with(&base, ("resource", ARCHIVE))),
    ];
    for (case, params) in cases {
        let r = stack.post(BILLING, &params).await;
        assert_refused(&r, 400, "invalid_target", &[&subject, "mcp-secret"], case);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn subject_token_not_minted_here_or_expired_is_invalid_request() {
    let stack = Stack::start(clients()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |iss: &str, exp: u64| {
        json!({"iss": iss, "sub": "agent", "aud": MCP, "client_id": "agent",
               "scope": "invoices:read", "iat": now, "exp": exp, "jti": "x"})
    };
    // Control: a forged-with-our-key token with the right claims is accepted, so each refusal
    // below is about the one thing that differs.
    let control = stack.forge(&claims(&stack.base, now + 60));
    let r = stack.post(BILLING, &exchange(&control, LEDGER)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Another issuer instance at the same URL, with its own key.
    let foreign_key = issuer_with(
        &stack.base,
        &SigningKey::generate(Default::default())
            .unwrap()
            .to_pkcs8_pem()
            .unwrap(),
        clients(),
        300,
    )
    .mint("agent", &[], MCP)
    .unwrap();
    let other_iss = stack.forge(&claims("http://127.0.0.1:1", now + 60));
    let expired = stack.forge(&claims(&stack.base, now - 1));
    // A real token with its payload edited (aud kept, scope widened): the signature no longer
    // matches.
    let real = stack.agent_token(MCP).await;
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["scope"] = "invoices:read invoices:write audit:read admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let bad_signature = parts.join(".");
    // Right key and claims, but `typ` JWT (e.g. an ID token), not an access token.
    let mut id_token_header = Header::new(Algorithm::ES256);
    id_token_header.kid = Some(stack.kid());
    let id_token = jsonwebtoken::encode(
        &id_token_header,
        &claims(&stack.base, now + 60),
        &stack.encoding_key(),
    )
    .unwrap();

    for (case, token) in [
        ("another issuer's key", foreign_key.as_str()),
        ("another iss", other_iss.as_str()),
        ("expired", expired.as_str()),
        ("bad signature", bad_signature.as_str()),
        ("typ JWT, not at+jwt", id_token.as_str()),
        ("garbage", "not-a-token"),
        ("missing", ""),
    ] {
        let r = stack.post(BILLING, &exchange(token, LEDGER)).await;
        let secrets: &[&str] = if token.is_empty() { &[] } else { &[token] };
        assert_refused(&r, 400, "invalid_request", secrets, case);
        let reason = if token.is_empty() {
            "subject_token is required"
        } else {
            "subject_token is not a valid, unexpired access token of this issuer"
        };
        assert_reason(&r, reason, case);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn subject_token_not_addressed_to_the_exchanging_client_is_invalid_request() {
    let stack = Stack::start(clients()).await;
    let for_mcp = stack.agent_token(MCP).await;
    let for_reports = stack.agent_token(REPORTS).await;
    let for_ledger = stack.agent_token(LEDGER).await;
    let reporting = Auth::Basic("reporting-mcp", "reports-secret");
    for (case, auth, token) in [
        // reporting-mcp may exchange for LEDGER, but this token was for billing-mcp's MCP.
        ("MCP token at reporting-mcp", reporting, &for_mcp),
        // billing-mcp may exchange for LEDGER, but this token was for reporting-mcp.
        ("REPORTS token at billing-mcp", BILLING, &for_reports),
        // A token already addressed to the target is not addressed to billing-mcp either.
        ("LEDGER token at billing-mcp", BILLING, &for_ledger),
    ] {
        let r = stack.post(auth, &exchange(token, LEDGER)).await;
        assert_refused(&r, 400, "invalid_request", &[token], case);
        assert_reason(
            &r,
            "subject_token was not issued for the resource this client serves",
            case,
        );
    }
    // The control: reporting-mcp with a token addressed to it succeeds.
    let r = stack.post(reporting, &exchange(&for_reports, LEDGER)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    stack.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_subject_token_type_is_invalid_request() {
    let stack = Stack::start(clients()).await;
    let subject = stack.agent_token(MCP).await;
    let base = exchange(&subject, LEDGER);
    let no_type = without(&base, "subject_token_type");
    let only_access = "only access tokens can be exchanged";
    let cases = [
        ("missing", no_type.clone(), "subject_token_type is required"),
        (
            "jwt",
            with(&no_type, ("subject_token_type", JWT_TYPE)),
            only_access,
        ),
        (
            "id_token",
            with(&no_type, ("subject_token_type", ID_TOKEN_TYPE)),
            only_access,
        ),
        (
            "empty",
            with(&no_type, ("subject_token_type", "")),
            only_access,
        ),
        (
            "no subject_token",
            without(&base, "subject_token"),
            "subject_token is required",
        ),
    ];
    for (case, params, reason) in cases {
        let r = stack.post(BILLING, &params).await;
        assert_refused(&r, 400, "invalid_request", &[&subject], case);
        assert_reason(&r, reason, case);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn unsupported_requested_token_type_or_actor_token_is_invalid_request() {
    let stack = Stack::start(clients()).await;
    let subject = stack.agent_token(MCP).await;
    let base = exchange(&subject, LEDGER);
    let actor = stack.agent_token(MCP).await;
    let only_access = "only access tokens can be requested";
    let cases = [
        (
            "refresh_token",
            with(&base, ("requested_token_type", REFRESH_TOKEN_TYPE)),
            only_access,
        ),
        (
            "jwt",
            with(&base, ("requested_token_type", JWT_TYPE)),
            only_access,
        ),
        (
            "actor_token",
            with(
                &with(&base, ("actor_token", actor.as_str())),
                ("actor_token_type", ACCESS_TOKEN_TYPE),
            ),
            "actor_token is not supported",
        ),
    ];
    for (case, params, reason) in cases {
        let r = stack.post(BILLING, &params).await;
        assert_refused(&r, 400, "invalid_request", &[&subject, &actor], case);
        assert_reason(&r, reason, case);
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn scope_wider_than_subject_or_client_is_invalid_scope() {
    let stack = Stack::start(clients()).await;
    // The agent's token for MCP with invoices:read only.
    let r = stack
        .post(
            Auth::Basic("agent", "agent-secret"),
            &[
                ("grant_type", "client_credentials"),
                ("resource", MCP),
                ("scope", "invoices:read audit:read"),
            ],
        )
        .await;
    let subject = r.json["access_token"].as_str().unwrap().to_owned();
    for (case, scope) in [
        ("the subject lacks it", "invoices:write"),
        ("the client may not request it", "audit:read"),
        ("the client's own scope, not the subject's", "ledger:read"),
        (
            "one good, one not: no silent drop",
            "invoices:read invoices:write",
        ),
        ("unknown", "admin"),
        ("empty", ""),
        ("double space", "invoices:read  invoices:read"),
    ] {
        let r = stack
            .post(
                BILLING,
                &with(&exchange(&subject, LEDGER), ("scope", scope)),
            )
            .await;
        assert_refused(&r, 400, "invalid_scope", &[&subject], case);
    }
    let r = stack.post(BILLING, &exchange(&subject, LEDGER)).await;
    assert_eq!(
        r.json["scope"], "invoices:read",
        "control: the default narrows"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn metadata_advertises_token_exchange_only_when_some_client_may_exchange() {
    let with_policy = Stack::start(clients()).await;
    let without_policy = Stack::start(vec![DevClient::new("plain", "p", ["invoices:read"])]).await;
    for (stack, grants) in [
        (
            &with_policy,
            json!(["client_credentials", TOKEN_EXCHANGE_GRANT]),
        ),
        (&without_policy, json!(["client_credentials"])),
    ] {
        let m: Value = stack
            .http
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                stack.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(m["grant_types_supported"], grants);
    }
    // Without a policy the grant is not supported at all, matching the metadata.
    let subject = without_policy
        .post(
            Auth::Basic("plain", "p"),
            &[("grant_type", "client_credentials"), ("resource", MCP)],
        )
        .await
        .json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = without_policy
        .post(Auth::Basic("plain", "p"), &exchange(&subject, LEDGER))
        .await;
    assert_refused(&r, 400, "unsupported_grant_type", &[&subject], "no policy");
    with_policy.shutdown().await;
    without_policy.shutdown().await;
}

#[test]
fn exchange_policy_configuration_is_validated() {
    let base = |clients| DevIssuerConfig {
        issuer: Some("http://127.0.0.1:1".into()),
        clients,
        ..DevIssuerConfig::default()
    };
    let mut targets_without_serves = DevClient::new("a", "s", ["x"]);
    targets_without_serves.may_exchange_for = vec![LEDGER.into()];
    let cases = [
        ("clients.may_exchange_for", vec![targets_without_serves]),
        (
            "clients.serves",
            vec![DevClient::new("a", "s", ["x"]).with_token_exchange("/mcp", [LEDGER])],
        ),
        (
            "clients.may_exchange_for",
            vec![DevClient::new("a", "s", ["x"]).with_token_exchange(MCP, ["ledger"])],
        ),
        (
            "clients.serves",
            vec![
                DevClient::new("a", "s", ["x"]).with_token_exchange(MCP, [LEDGER]),
                DevClient::new("b", "s", ["x"]).with_token_exchange(MCP, [REPORTS]),
            ],
        ),
    ];
    for (key, clients) in cases {
        match DevIssuer::new(base(clients)) {
            Err(DevIssuerError::Config { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: expected a config error, got {other:?}"),
        }
    }
    // Serving a resource without exchanging is harmless and allowed.
    let mut serves_only = DevClient::new("a", "s", ["x"]);
    serves_only.serves = Some(MCP.into());
    assert!(
        !DevIssuer::new(base(vec![serves_only]))
            .unwrap()
            .supports_token_exchange()
    );
}

#[test]
fn exchange_policy_loads_from_toml() {
    let cfg: DevIssuerConfig = toml::from_str(&format!(
        r#"
        [[clients]]
        id = "billing-mcp"
        secret = "s"
        allowed_scopes = ["invoices:read"]
        serves = "{MCP}"
        may_exchange_for = ["{LEDGER}"]
        "#
    ))
    .unwrap();
    let c = &cfg.clients[0];
    assert_eq!(c.serves.as_deref(), Some(MCP));
    assert_eq!(c.may_exchange_for, [LEDGER]);
    let plain: DevIssuerConfig =
        toml::from_str("[[clients]]\nid = \"a\"\nsecret = \"s\"\n").unwrap();
    assert!(plain.clients[0].serves.is_none() && !plain.clients[0].may_exchange());
}
