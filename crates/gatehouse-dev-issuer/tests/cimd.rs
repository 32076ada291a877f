//! Invariant: a `client_id` that is a metadata document URL
//! (draft-ietf-oauth-client-id-metadata-document) is trusted only after its document is
//! fetched from exactly that URL — no redirects, small, quick, JSON naming itself, public
//! client — and a client so described completes the code flow. Anything else is an error page.
//! The document servers here are real loopback sockets.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use common::*;
use gatehouse_dev_issuer::DevIssuer;
use serde_json::json;
use tokio::net::TcpListener;

#[derive(Clone)]
struct Docs {
    base: String,
    hits: Arc<AtomicUsize>,
}

fn doc(client_id: &str) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "client_name": "Doc Client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    })
}

async fn good(State(d): State<Docs>) -> Response {
    d.hits.fetch_add(1, Ordering::SeqCst);
    axum::Json(doc(&format!("{}/good", d.base))).into_response()
}

async fn big(State(d): State<Docs>) -> Response {
    let mut m = doc(&format!("{}/big", d.base));
    m["logo_uri"] = json!(format!("https://x.example/{}", "a".repeat(6000)));
    axum::Json(m).into_response()
}

async fn wrong(State(d): State<Docs>) -> Response {
    axum::Json(doc(&format!("{}/good", d.base))).into_response()
}

async fn redirect(State(d): State<Docs>) -> Response {
    Redirect::temporary(&format!("{}/good", d.base)).into_response()
}

async fn secret(State(d): State<Docs>) -> Response {
    let mut m = doc(&format!("{}/secret", d.base));
    m["token_endpoint_auth_method"] = json!("client_secret_basic");
    axum::Json(m).into_response()
}

async fn not_json() -> Response {
    "hello".into_response()
}

async fn missing() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// Serves the documents on a loopback port; returns their base URL and the /good hit count.
async fn doc_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/good", get(good))
        .route("/big", get(big))
        .route("/wrong", get(wrong))
        .route("/redirect", get(redirect))
        .route("/secret", get(secret))
        .route("/not-json", get(not_json))
        .route("/missing", get(missing))
        .with_state(Docs {
            base: base.clone(),
            hits: hits.clone(),
        });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

fn issuer(timeout: Duration) -> DevIssuer {
    DevIssuer::builder(config())
        .metadata_document_timeout(timeout)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_metadata_document_client_completes_the_code_flow_and_is_cached() {
    let (base, hits) = doc_server().await;
    let iss = issuer(Duration::from_secs(3));
    let client_id = format!("{base}/good");
    let ch = challenge(VERIFIER);
    let page = authorize(&iss, &auth_params(&client_id, &ch)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Doc Client"));
    let r = decide(&iss, &page.transaction(), "alice", "approve").await;
    let code = r.redirect_params()["code"].clone();
    let body = redeem(&iss, &client_id, &code).await.json();
    let claims = verify(&iss, body["access_token"].as_str().unwrap(), RESOURCE).await;
    assert_eq!(claims["client_id"], client_id.as_str());
    // Refresh works for it too (its document lists refresh_token).
    let rt = body["refresh_token"].as_str().unwrap();
    let r = post_form(
        &iss,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", rt),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    assert_eq!(
        authorize(&iss, &auth_params(&client_id, &ch)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "second request served from the cache"
    );
}

#[tokio::test]
async fn unacceptable_documents_get_an_error_page() {
    let (base, _) = doc_server().await;
    let iss = issuer(Duration::from_secs(3));
    let ch = challenge(VERIFIER);
    for path in [
        "/big",
        "/wrong",
        "/redirect",
        "/secret",
        "/not-json",
        "/missing",
    ] {
        let client_id = format!("{base}{path}");
        let r = authorize(&iss, &auth_params(&client_id, &ch)).await;
        assert_error_page(&r);
    }
    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/client", closed.local_addr().unwrap());
    drop(closed);
    assert_error_page(&authorize(&iss, &auth_params(&dead, &ch)).await);
}

#[tokio::test]
async fn a_server_that_never_answers_is_cut_off_by_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/client", listener.local_addr().unwrap());
    // Accepts and holds connections without ever answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let iss = issuer(Duration::from_millis(300));
    let ch = challenge(VERIFIER);
    let started = std::time::Instant::now();
    let r = authorize(&iss, &auth_params(&url, &ch)).await;
    assert_error_page(&r);
    assert!(r.body.contains("in time"), "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the configured timeout"
    );
}

#[tokio::test]
async fn a_metadata_document_url_is_not_a_credential_at_the_token_endpoint() {
    // The code was issued to /good; presenting another document URL does not redeem it.
    let (base, _) = doc_server().await;
    let iss = issuer(Duration::from_secs(3));
    let client_id = format!("{base}/good");
    let ch = challenge(VERIFIER);
    let code = code_for(&iss, &auth_params(&client_id, &ch), "alice").await;
    let r = redeem(&iss, &format!("{base}/wrong"), &code).await;
    assert_token_error(&r, "invalid_grant");
}
