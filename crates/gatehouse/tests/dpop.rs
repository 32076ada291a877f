//! Invariant: with DPoP on for an issuer, a DPoP-bound token is used only with a valid proof by
//! the key it is bound to — on every request, cached token or not — and never as a Bearer token;
//! `dpop = "required"` refuses unbound tokens; with DPoP off (the default) nothing changes for
//! Bearer clients and the `DPoP` scheme is not taken. Refusals are `401` with the `DPoP`
//! challenge RFC 9449 §7.1 names, and the metadata document advertises DPoP (RFC 9728 §2).
//!
//! The stack is what the settings build, against the testkit's authorization server (JWT and
//! introspection), in front of a real rmcp service; proofs are made with Gatehouse's own JWS
//! signer over a fresh client key.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::jws::{SigningAlg, SigningKey, random_id};
use gatehouse::settings::Settings;
use gatehouse::verify::dpop::{DpopMode, jwk_thumbprint};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[path = "common/mod.rs"]
mod common;

use common::call_body;

const RESOURCE: &str = "https://mcp.example.com/mcp";

type Stack = common::IssuerStack;

async fn stack(mode: DpopMode) -> Stack {
    stack_with(mode, |_| {}).await
}

/// The default JWT and introspection issuer, both with DPoP `mode`, changed by `tweak`.
async fn stack_with(mode: DpopMode, tweak: impl FnOnce(&mut Settings)) -> Stack {
    Stack::start(RESOURCE, |settings| {
        settings.auth.issuers[0].dpop = mode;
        settings.auth.introspection[0].dpop = mode;
        tweak(settings);
    })
    .await
}

/// A client's DPoP key.
struct Client(SigningKey);

impl Client {
    fn new() -> Self {
        Self(SigningKey::generate(SigningAlg::ES256).unwrap())
    }

    fn jkt(&self) -> String {
        jwk_thumbprint(self.0.public_jwk().as_object().unwrap()).unwrap()
    }

    /// A proof for `POST` to `htu` carrying `token`'s hash.
    fn proof_for(&self, htm: &str, htu: &str, token: &str) -> String {
        self.proof_with(htm, htu, token, None)
    }

    fn proof_with(&self, htm: &str, htu: &str, token: &str, nonce: Option<&str>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            token.as_bytes(),
        ));
        let mut claims =
            json!({"jti": random_id(), "htm": htm, "htu": htu, "iat": now, "ath": ath});
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        self.0.sign_jws(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.0.public_jwk()}),
            &claims,
        )
    }

    fn proof(&self, token: &str) -> String {
        self.proof_for("POST", RESOURCE, token)
    }
}

struct Reply {
    status: StatusCode,
    challenges: Vec<String>,
    nonce: Option<String>,
    body: Value,
}

impl Stack {
    /// A JWT bound to `client`'s key.
    fn bound_token(&self, client: &Client) -> String {
        self.issuer
            .token()
            .claim("cnf", json!({ "jkt": client.jkt() }))
            .sign()
    }

    async fn call(&self, authorization: Option<String>, proofs: &[String]) -> Reply {
        let mut req = Request::post("/mcp")
            .header("host", "mcp.example.com")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        for p in proofs {
            req = req.header("dpop", p);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(call_body("whoami"))).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let challenges = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let nonce = resp
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            challenges,
            nonce,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn metadata(&self) -> Value {
        let resp = self
            .app
            .clone()
            .oneshot(
                Request::get("/.well-known/oauth-protected-resource/mcp")
                    .header("host", "mcp.example.com")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn dpop(token: &str) -> Option<String> {
    Some(format!("DPoP {token}"))
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

fn assert_proof_refused(r: &Reply, case: &str) {
    assert_eq!(r.status, 401, "{case}");
    assert_eq!(r.body["error"], "invalid_dpop_proof", "{case}");
    assert_eq!(
        r.challenges,
        [
            "DPoP error=\"invalid_dpop_proof\", error_description=\"The DPoP proof is invalid\", \
             algs=\"ES256 ES384 EdDSA RS256 PS256\""
        ],
        "{case}"
    );
}

fn assert_token_refused(r: &Reply, case: &str) {
    assert_eq!(r.status, 401, "{case}");
    assert_eq!(r.body["error"], "invalid_token", "{case}");
    assert!(
        r.challenges[0].starts_with("Bearer error=\"invalid_token\""),
        "{case}"
    );
    assert_eq!(
        r.challenges[1], "DPoP algs=\"ES256 ES384 EdDSA RS256 PS256\"",
        "{case}: a DPoP challenge beside the Bearer one"
    );
}

#[tokio::test]
async fn a_bound_token_works_only_with_its_proof_every_time() {
    let s = stack(DpopMode::Allowed).await;
    let client = Client::new();
    let token = s.bound_token(&client);

    let ok = s.call(dpop(&token), &[client.proof(&token)]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // Cached now: the proof is still required, and still checked.
    let again = s.call(dpop(&token), &[client.proof(&token)]).await;
    assert_eq!(again.status, 200);
    assert_proof_refused(&s.call(dpop(&token), &[]).await, "no proof");

    let replayed = client.proof(&token);
    assert_eq!(
        s.call(dpop(&token), std::slice::from_ref(&replayed))
            .await
            .status,
        200
    );
    assert_proof_refused(&s.call(dpop(&token), &[replayed]).await, "replayed proof");
    assert_proof_refused(
        &s.call(dpop(&token), &[client.proof(&token), client.proof(&token)])
            .await,
        "two proofs",
    );
    assert_proof_refused(
        &s.call(dpop(&token), &[Client::new().proof(&token)]).await,
        "a proof by another key",
    );
    assert_proof_refused(
        &s.call(dpop(&token), &[client.proof("another-token")]).await,
        "a proof for another token",
    );
    assert_proof_refused(
        &s.call(
            dpop(&token),
            &[client.proof_for("POST", "https://mcp.example.com/other", &token)],
        )
        .await,
        "a proof for another URI",
    );
    assert_proof_refused(
        &s.call(dpop(&token), &[client.proof_for("GET", RESOURCE, &token)])
            .await,
        "a proof for another method",
    );
    assert_proof_refused(
        &s.call(dpop(&token), &["not-a-proof".to_owned()]).await,
        "garbage",
    );

    // RFC 9449 §7.2: a bound token is not a Bearer token, with or without a proof.
    assert_token_refused(&s.call(bearer(&token), &[]).await, "bound token as Bearer");
    assert_token_refused(
        &s.call(bearer(&token), &[client.proof(&token)]).await,
        "bound token as Bearer with a proof",
    );
    // An unbound token is not a DPoP token.
    let plain = s.issuer.token().sign();
    assert_token_refused(
        &s.call(dpop(&plain), &[client.proof(&plain)]).await,
        "unbound token as DPoP",
    );
    // … but it is still a Bearer token where DPoP is only allowed.
    assert_eq!(s.call(bearer(&plain), &[]).await.status, 200);

    // Discovery: the first 401 names both schemes; the metadata names the algorithms.
    let first = s.call(None, &[]).await;
    assert_eq!(first.status, 401);
    assert!(first.challenges[0].starts_with("Bearer resource_metadata="));
    assert_eq!(
        first.challenges[1],
        "DPoP algs=\"ES256 ES384 EdDSA RS256 PS256\""
    );
    let m = s.metadata().await;
    assert_eq!(
        m["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "EdDSA", "RS256", "PS256"])
    );
    assert!(m.get("dpop_bound_access_tokens_required").is_none(), "{m}");
}

#[tokio::test]
async fn an_introspected_token_is_bound_by_its_cnf() {
    let s = stack(DpopMode::Allowed).await;
    let client = Client::new();
    s.issuer.set_introspection(
        "opaque-bound",
        json!({"active": true, "aud": RESOURCE, "sub": "u", "scope": "invoices:read",
               "cnf": {"jkt": client.jkt()}}),
    );
    let ok = s
        .call(dpop("opaque-bound"), &[client.proof("opaque-bound")])
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_token_refused(&s.call(bearer("opaque-bound"), &[]).await, "as Bearer");
    assert_proof_refused(
        &s.call(dpop("opaque-bound"), &[Client::new().proof("opaque-bound")])
            .await,
        "another key",
    );
}

#[tokio::test]
async fn required_refuses_unbound_tokens() {
    let s = stack(DpopMode::Required).await;
    let client = Client::new();
    let token = s.bound_token(&client);
    assert_eq!(
        s.call(dpop(&token), &[client.proof(&token)]).await.status,
        200
    );
    let plain = s.issuer.token().sign();
    assert_token_refused(&s.call(bearer(&plain), &[]).await, "unbound Bearer");
    assert_eq!(
        s.metadata().await["dpop_bound_access_tokens_required"],
        true
    );
}

#[tokio::test]
async fn off_by_default_changes_nothing_for_bearer_clients() {
    let s = stack(DpopMode::Off).await;
    let client = Client::new();
    let plain = s.issuer.token().sign();
    assert_eq!(s.call(bearer(&plain), &[]).await.status, 200);
    // The DPoP scheme is another scheme: no credentials, and no DPoP challenge.
    let r = s.call(dpop(&plain), &[client.proof(&plain)]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "unauthorized");
    assert_eq!(r.challenges.len(), 1, "{:?}", r.challenges);
    // A bound token cannot be used as Bearer even here (it would be a stolen token's bypass).
    let bound = s.bound_token(&client);
    let r = s.call(bearer(&bound), &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "invalid_token");
    let m = s.metadata().await;
    assert!(m.get("dpop_signing_alg_values_supported").is_none(), "{m}");
}

// RFC 9449 §9: with a nonce secret, a proof without the server's nonce is answered
// `use_dpop_nonce` with a fresh one, and the retry carrying it passes.
#[tokio::test]
async fn a_nonce_is_asked_for_then_accepted() {
    let secret = std::env::temp_dir().join(format!("gatehouse-dpop-nonce-{}", std::process::id()));
    std::fs::write(&secret, "a nonce secret of at least thirty-two characters").unwrap();
    let file = secret.clone();
    let s = stack_with(DpopMode::Required, move |settings| {
        settings.auth.dpop.nonce_secret_file = Some(file);
    })
    .await;
    let client = Client::new();
    let token = s.bound_token(&client);
    let first = s.call(dpop(&token), &[client.proof(&token)]).await;
    assert_eq!(first.status, 401);
    assert_eq!(first.body["error"], "use_dpop_nonce");
    assert!(
        first.challenges[0].starts_with("DPoP error=\"use_dpop_nonce\""),
        "{:?}",
        first.challenges
    );
    let nonce = first.nonce.expect("a DPoP-Nonce to retry with");
    let retry = s
        .call(
            dpop(&token),
            &[client.proof_with("POST", RESOURCE, &token, Some(&nonce))],
        )
        .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    let forged = s
        .call(
            dpop(&token),
            &[client.proof_with("POST", RESOURCE, &token, Some("Zm9yZ2Vk"))],
        )
        .await;
    assert_eq!(forged.body["error"], "use_dpop_nonce");
    let _ = std::fs::remove_file(&secret);
}
