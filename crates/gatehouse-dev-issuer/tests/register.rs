//! Invariant: dynamic client registration (RFC 7591) accepts exactly the clients the code flow
//! can serve safely — https, loopback or reverse-DNS private-use redirect URIs, the supported
//! auth methods and grants — answers with the RFC's fields, refuses everything else with
//! `invalid_redirect_uri` / `invalid_client_metadata`, and never holds more than its bound.
//! Demo users are validated like clients.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use gatehouse_dev_issuer::{
    DevIssuer, DevIssuerConfig, DevIssuerError, DevUser, MAX_REGISTERED_CLIENTS,
};
use serde_json::{Value, json};

async fn refused(iss: &DevIssuer, metadata: Value, code: &str) {
    let r = post_json(iss, "/register", &metadata).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{metadata}: {}", r.body);
    assert_eq!(r.json()["error"], code, "{metadata}");
    assert!(r.json()["error_description"].is_string());
    assert!(!r.body.contains("evil"), "nothing echoed: {}", r.body);
}

#[tokio::test]
async fn defaults_follow_rfc7591_and_confidential_clients_get_a_secret() {
    let env = Env::new();
    let r = post_json(&env.iss, "/register", &json!({"redirect_uris": ["https://app.example/cb"], "logo_uri": "https://app.example/l.png", "x-unknown": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["cache-control"], "no-store");
    let info = r.json();
    assert!(info["client_id"].as_str().unwrap().len() > 20);
    assert!(info["client_id_issued_at"].is_u64());
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_basic");
    assert!(info["client_secret"].as_str().unwrap().len() >= 43);
    assert_eq!(info["client_secret_expires_at"], 0);
    assert_eq!(info["grant_types"], json!(["authorization_code"]));
    assert_eq!(info["response_types"], json!(["code"]));
    assert_eq!(info["redirect_uris"], json!(["https://app.example/cb"]));

    let public = register(
        &env.iss,
        json!({
            "redirect_uris": ["http://localhost:6274/oauth/callback", "com.example.app:/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Inspector",
            "scope": "invoices:read",
        }),
    )
    .await;
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["client_name"], "Inspector");
    assert_eq!(public["scope"], "invoices:read");
    assert_eq!(
        public["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let post = register(&env.iss, json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_post"})).await;
    assert!(post["client_secret"].is_string());
}

#[tokio::test]
async fn unusable_redirect_uris_are_invalid_redirect_uri() {
    let env = Env::new();
    for uris in [
        json!(null),
        json!([]),
        json!("https://app.example/cb"),
        json!(["http://evil.example/cb"]),
        json!(["https://app.example/cb#evil"]),
        json!(["myapp:/evil"]),
        json!(["javascript:evil()"]),
        json!(["https://app.example/cb", 7]),
        json!(["/evil"]),
    ] {
        let mut m = json!({"token_endpoint_auth_method": "none"});
        if !uris.is_null() {
            m["redirect_uris"] = uris;
        }
        refused(&env.iss, m, "invalid_redirect_uri").await;
    }
}

#[tokio::test]
async fn unsupported_metadata_is_invalid_client_metadata() {
    let env = Env::new();
    let base = || json!({"redirect_uris": ["https://app.example/cb"]});
    for (k, v) in [
        ("token_endpoint_auth_method", json!("private_key_jwt")),
        ("token_endpoint_auth_method", json!(1)),
        ("grant_types", json!(["client_credentials"])),
        ("grant_types", json!(["refresh_token"])),
        ("grant_types", json!(["authorization_code", "implicit"])),
        ("response_types", json!(["token"])),
        ("response_types", json!([])),
        ("client_name", json!(["evil"])),
        ("scope", json!("a  b")),
    ] {
        let mut m = base();
        m[k] = v;
        refused(&env.iss, m, "invalid_client_metadata").await;
    }
    // Not JSON, not an object, not labelled JSON.
    for (ct, body) in [
        ("application/json", "evil"),
        ("application/json", "[]"),
        (
            "application/x-www-form-urlencoded",
            r#"{"redirect_uris":["https://app.example/cb"]}"#,
        ),
    ] {
        let req = Request::post("/register")
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap();
        let r = call(&env.iss, req).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.json()["error"], "invalid_client_metadata");
    }
    // Larger than 16 KiB: refused before parsing.
    let big =
        json!({"redirect_uris": ["https://app.example/cb"], "client_name": "x".repeat(17 * 1024)});
    let r = post_json(&env.iss, "/register", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn registrations_are_bounded() {
    let env = Env::new();
    let m =
        json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"});
    for _ in 0..MAX_REGISTERED_CLIENTS {
        register(&env.iss, m.clone()).await;
    }
    refused(&env.iss, m, "invalid_client_metadata").await;
}

#[test]
fn users_are_validated_like_clients() {
    let with_users = |users: Vec<DevUser>| {
        DevIssuer::new(DevIssuerConfig {
            issuer: Some(ISSUER.into()),
            users,
            ..DevIssuerConfig::default()
        })
    };
    for (users, key) in [
        (vec![DevUser::new("", ["a"])], "users"),
        (vec![DevUser::new("a", ["a"]).with_subject("")], "users"),
        (
            vec![DevUser::new("a", ["bad scope"])],
            "users.allowed_scopes",
        ),
        (
            vec![DevUser::new("a", ["x"]), DevUser::new("a", ["y"])],
            "users",
        ),
    ] {
        match with_users(users) {
            Err(DevIssuerError::Config { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        with_users(vec![DevUser::new("a", ["x"])])
            .unwrap()
            .supports_user_login()
    );
    assert!(!with_users(vec![]).unwrap().supports_user_login());
}

#[test]
fn users_load_from_toml() {
    let config: DevIssuerConfig = toml::from_str(
        r#"
        [[users]]
        name = "alice"
        tenant = "acme"
        allowed_scopes = ["invoices:read"]

        [[users]]
        name = "bob"
        subject = "user-bob"
        "#,
    )
    .unwrap();
    assert_eq!(config.users.len(), 2);
    assert_eq!(config.users[0].tenant.as_deref(), Some("acme"));
    assert_eq!(config.users[1].sub(), "user-bob");
    let unknown = toml::from_str::<DevIssuerConfig>("[[users]]\nname = \"a\"\npassword = \"x\"\n");
    assert!(unknown.is_err(), "deny_unknown_fields");
}
