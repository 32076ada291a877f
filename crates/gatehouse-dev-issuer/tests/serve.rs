//! Invariant: `serve` runs the issuer on a real loopback socket, derives its issuer from the
//! bound address (so metadata `issuer` equals the URL clients discover it at), and stops on the
//! shutdown signal.

use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig, banner, serve, serve_issuer};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const RESOURCE: &str = "http://127.0.0.1:3000/mcp";

/// GETs `url` and decodes its JSON body.
async fn get_json<T: DeserializeOwned>(http: &reqwest::Client, url: &str) -> T {
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.unwrap()
}

fn config() -> DevIssuerConfig {
    DevIssuerConfig {
        clients: vec![DevClient::new("agent", "s3cret", ["invoices:read"])],
        ..DevIssuerConfig::default()
    }
}

#[tokio::test]
async fn serves_discovery_token_and_jwks_on_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, config(), async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let meta: Value = get_json(
        &http,
        &format!("{base}/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(
        meta["issuer"], base,
        "RFC 8414 §3.3: issuer equals the discovery base"
    );

    let token_endpoint = meta["token_endpoint"].as_str().unwrap();
    let resp = http
        .post(token_endpoint)
        .basic_auth("agent", Some("s3cret"))
        .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();

    let jwks: JwkSet = get_json(&http, meta["jwks_uri"].as_str().unwrap()).await;
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[RESOURCE]);
    v.set_issuer(&[&base]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["scope"], "invoices:read");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn serve_issuer_shares_state_with_mint_and_a_pem_key_survives_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = std::env::temp_dir().join(format!("dev-issuer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem_path = dir.join("key.pem");
    let first = DevIssuer::for_listener(&listener, config()).unwrap();
    // Save the generated key, as the CLI's "keep my key" option would.
    let pem = gatehouse_dev_issuer::SigningKey::generate(Default::default())
        .unwrap()
        .to_pkcs8_pem()
        .unwrap();
    std::fs::write(&pem_path, pem).unwrap();
    let with_file = DevIssuerConfig {
        signing_key_pem: Some(pem_path.clone()),
        ..config()
    };
    let a = DevIssuer::for_listener(&listener, with_file.clone()).unwrap();
    let b = DevIssuer::for_listener(&listener, with_file).unwrap();
    assert_eq!(a.kid(), b.kid(), "same key file, same kid");
    assert_ne!(a.kid(), first.kid(), "generated keys differ");
    std::fs::remove_dir_all(&dir).unwrap();

    let minted = a.mint("agent", &[], RESOURCE).unwrap();
    let base = a.issuer().to_owned();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_issuer(listener, a, async {
        let _ = stopped.await;
    }));
    let jwks: Value = get_json(&reqwest::Client::new(), &format!("{base}/jwks")).await;
    let kid = jsonwebtoken::decode_header(&minted).unwrap().kid.unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"],
        kid.as_str(),
        "minted token verifiable by served JWKS"
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn banner_names_the_issuer() {
    assert!(banner("http://127.0.0.1:7").contains("http://127.0.0.1:7"));
}
