//! Invariant: with demo users, the development issuer runs the authorization code flow with
//! PKCE (OAuth 2.1 §4.1, RFC 7636) as MCP clients use it: a code is issued only after a user
//! approves on the sign-in page, only for a trusted client and redirect URI, only for a named
//! resource and the scopes that user may grant; it is redeemable once, briefly, by the same
//! client with the matching verifier; refresh tokens rotate and betray their reuse. Every
//! refusal is the RFC's error, delivered where the RFC says (page, redirect or JSON).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use gatehouse_dev_issuer::{DevClient, DevIssuer, DevIssuerConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn full_code_flow_with_pkce_yields_verifiable_tokens() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let params = with(
        &auth_params(&client_id, &ch),
        "scope",
        "openid invoices:read invoices:write",
    );
    let params = with(&params, "nonce", "n-0S6");

    let page = authorize(iss, &params).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(
        page.headers["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' \
         http://127.0.0.1:6274; frame-ancestors 'none'"
    );
    assert!(page.headers.get("access-control-allow-origin").is_none());
    let html = &page.body;
    assert!(html.contains("Sign in to the Gatehouse development authorization server"));
    assert!(html.contains("DEVELOPMENT ONLY"));
    assert!(html.contains("MCP Inspector"), "client name shown");
    assert!(html.contains("127.0.0.1:6274"), "redirect host shown");
    assert!(html.contains(RESOURCE));
    assert!(html.contains("invoices:write"));
    assert!(html.contains(r#"<input type="radio" name="user" value="alice""#));
    assert!(html.contains(r#"<input type="radio" name="user" value="bob""#));
    assert!(html.contains("tenant acme"));
    assert!(
        html.contains(r#"<button type="submit" name="decision" value="approve">Approve</button>"#)
    );
    assert!(html.contains(r#"<button type="submit" name="decision" value="deny">Deny</button>"#));
    assert!(!html.contains("<script"), "no scripts");

    let r = decide(iss, &page.transaction(), "alice", "approve").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.redirect_base(), REDIRECT);
    let p = r.redirect_params();
    assert_eq!(p["state"], "st-123");
    assert_eq!(p["iss"], ISSUER, "RFC 9207");
    assert!(p["code"].len() >= 43, "at least 256 bits");

    let t = redeem(iss, &client_id, &p["code"]).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.headers["cache-control"], "no-store");
    let body = t.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid invoices:read invoices:write");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["refresh_token"].is_string());

    let at = body["access_token"].as_str().unwrap();
    assert_eq!(header_typ(at), "at+jwt");
    let claims = verify(iss, at, RESOURCE).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["scope"], "openid invoices:read invoices:write");

    let id = body["id_token"].as_str().unwrap();
    assert_eq!(header_typ(id), "JWT");
    let idc = verify(iss, id, &client_id).await;
    assert_eq!(idc["sub"], "alice");
    assert_eq!(idc["nonce"], "n-0S6");
    assert!(idc["auth_time"].is_u64());
}

#[tokio::test]
async fn subject_and_absent_scope_come_from_the_user_and_no_openid_no_id_token() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    // No scope parameter: bob's allowed scopes.
    let code = code_for(iss, &without(&auth_params(&client_id, &ch), "scope"), "bob").await;
    let body = redeem(iss, &client_id, &code).await.json();
    assert_eq!(body["scope"], "invoices:read");
    assert!(body.get("id_token").is_none());
    let claims = verify(iss, body["access_token"].as_str().unwrap(), RESOURCE).await;
    assert_eq!(claims["sub"], "user-bob");
    assert!(claims.get("tenant").is_none());
}

#[tokio::test]
async fn step_up_is_a_new_request_with_more_scopes() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let first = code_for(iss, &auth_params(&client_id, &ch), "alice").await;
    assert_eq!(
        redeem(iss, &client_id, &first).await.json()["scope"],
        "invoices:read"
    );

    let more = with(
        &auth_params(&client_id, &ch),
        "scope",
        "invoices:read invoices:write",
    );
    let page = authorize(iss, &more).await;
    assert!(
        page.body.contains("<li><code>invoices:write</code></li>"),
        "page shows the new scope"
    );
    let r = decide(iss, &page.transaction(), "alice", "approve").await;
    let body = redeem(iss, &client_id, &r.redirect_params()["code"])
        .await
        .json();
    assert_eq!(body["scope"], "invoices:read invoices:write");

    // bob may not write: he grants only what he holds.
    let code = code_for(iss, &more, "bob").await;
    assert_eq!(
        redeem(iss, &client_id, &code).await.json()["scope"],
        "invoices:read"
    );
}

#[tokio::test]
async fn pkce_is_required_and_s256_only() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let good = auth_params(&client_id, &ch);
    for params in [
        without(&good, "code_challenge"),
        without(&good, "code_challenge_method"),
        with(&good, "code_challenge_method", "plain"),
        with(
            &with(&good, "code_challenge_method", "plain"),
            "code_challenge",
            VERIFIER,
        ),
        with(&good, "code_challenge", "too-short"),
    ] {
        assert_redirected_error(&authorize(iss, &params).await, "invalid_request");
    }
    assert_eq!(
        authorize(iss, &good).await.status,
        StatusCode::OK,
        "control"
    );
}

#[tokio::test]
async fn wrong_or_missing_verifier_is_refused_and_burns_the_code() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let code = code_for(iss, &auth_params(&client_id, &ch), "alice").await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let r = post_form(iss, "/token", &form, None).await;
    assert_token_error(&r, "invalid_request");
    let other = "another-verifier-of-more-than-forty-three-characters_xyz";
    form.push(("code_verifier", other));
    assert_token_error(
        &post_form(iss, "/token", &form, None).await,
        "invalid_grant",
    );
    // Single use: even the right verifier is too late now.
    assert_token_error(&redeem(iss, &client_id, &code).await, "invalid_grant");
}

#[tokio::test]
async fn code_reuse_fails_and_revokes_the_refresh_tokens_it_produced() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let code = code_for(iss, &auth_params(&client_id, &ch), "alice").await;
    let first = redeem(iss, &client_id, &code).await.json();
    let rt = first["refresh_token"].as_str().unwrap();

    assert_token_error(&redeem(iss, &client_id, &code).await, "invalid_grant");
    let r = refresh(iss, &client_id, rt, &[]).await;
    assert_token_error(&r, "invalid_grant");
}

#[tokio::test]
async fn codes_expire_after_sixty_seconds() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let fresh = code_for(iss, &auth_params(&client_id, &ch), "alice").await;
    let stale = code_for(iss, &auth_params(&client_id, &ch), "alice").await;
    env.advance(59);
    assert_eq!(
        redeem(iss, &client_id, &fresh).await.status,
        StatusCode::OK,
        "control"
    );
    env.advance(2);
    assert_token_error(&redeem(iss, &client_id, &stale).await, "invalid_grant");
}

#[tokio::test]
async fn redirect_uri_at_the_token_endpoint_must_repeat_the_authorized_one() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let other = "http://127.0.0.1:6274/other";
    for redirect in [Some(other), None] {
        let code = code_for(iss, &auth_params(&client_id, &ch), "alice").await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
            ("code_verifier", VERIFIER),
        ];
        if let Some(r) = redirect {
            form.push(("redirect_uri", r));
        }
        assert_token_error(
            &post_form(iss, "/token", &form, None).await,
            "invalid_grant",
        );
    }
}

#[tokio::test]
async fn loopback_redirect_port_may_vary_but_not_path_or_host() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let good = auth_params(&client_id, &ch);
    let moved = "http://127.0.0.1:49152/oauth/callback";
    let page = authorize(iss, &with(&good, "redirect_uri", moved)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("form-action 'self' http://127.0.0.1:49152;")
    );
    let r = decide(iss, &page.transaction(), "alice", "approve").await;
    assert!(r.location().unwrap().starts_with(moved));
    // The token request repeats the port-varied URI it used.
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("code", &r.redirect_params()["code"]),
        ("redirect_uri", moved),
        ("code_verifier", VERIFIER),
    ];
    assert_eq!(
        post_form(iss, "/token", &form, None).await.status,
        StatusCode::OK
    );

    for bad in [
        "http://127.0.0.1:6274/oauth/callback/evil",
        "http://localhost:6274/oauth/callback",
        "http://evil.test:6274/oauth/callback",
        "https://127.0.0.1:6274/oauth/callback",
    ] {
        assert_error_page(&authorize(iss, &with(&good, "redirect_uri", bad)).await);
    }
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_only_with_exactly_one_registered() {
    let env = Env::new();
    let iss = &env.iss;
    let one = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let code = code_for(
        iss,
        &without(&auth_params(&one, &ch), "redirect_uri"),
        "alice",
    )
    .await;
    // Not sent at authorize: not needed at the token endpoint either.
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", one.as_str()),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
    ];
    assert_eq!(
        post_form(iss, "/token", &form, None).await.status,
        StatusCode::OK
    );

    let two = register(
        iss,
        json!({"redirect_uris": [REDIRECT, "https://app.example/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let two = two["client_id"].as_str().unwrap();
    assert_error_page(&authorize(iss, &without(&auth_params(two, &ch), "redirect_uri")).await);
}

#[tokio::test]
async fn resource_is_required_once_and_must_match_at_the_token_endpoint() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let good = auth_params(&client_id, &ch);
    assert_redirected_error(
        &authorize(iss, &without(&good, "resource")).await,
        "invalid_target",
    );
    let mut two = good.clone();
    two.push(("resource", "http://127.0.0.1:4000/ledger"));
    assert_redirected_error(&authorize(iss, &two).await, "invalid_target");
    assert_redirected_error(
        &authorize(iss, &with(&good, "resource", "http://x/mcp#frag")).await,
        "invalid_target",
    );

    let code = code_for(iss, &good, "alice").await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("resource", "http://127.0.0.1:4000/ledger"),
    ];
    assert_token_error(
        &post_form(iss, "/token", &form, None).await,
        "invalid_target",
    );
    let code = code_for(iss, &good, "alice").await;
    form[2].1 = &code;
    form[5].1 = RESOURCE;
    assert_eq!(
        post_form(iss, "/token", &form, None).await.status,
        StatusCode::OK,
        "control"
    );
}

#[tokio::test]
async fn untrusted_client_or_redirect_gets_a_page_never_a_redirect() {
    let env = Env::new();
    let iss = &env.iss;
    let ch = challenge(VERIFIER);
    for client in ["dcr-unknown", "agent", "http://evil.test/client.json"] {
        assert_error_page(&authorize(iss, &auth_params(client, &ch)).await);
    }
    let good = public_client(iss).await;
    assert_error_page(&authorize(iss, &without(&auth_params(&good, &ch), "client_id")).await);
    // A repeated parameter is refused before anything is trusted.
    let mut rep = auth_params(&good, &ch);
    rep.push(("state", "again"));
    assert_error_page(&authorize(iss, &rep).await);
    // Errors past that point redirect.
    assert_redirected_error(
        &authorize(
            iss,
            &with(&auth_params(&good, &ch), "response_type", "token"),
        )
        .await,
        "unsupported_response_type",
    );
}

#[tokio::test]
async fn denial_and_ungrantable_scope_redirect_with_errors() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let page = authorize(iss, &auth_params(&client_id, &ch)).await;
    assert_redirected_error(
        &decide(iss, &page.transaction(), "alice", "deny").await,
        "access_denied",
    );

    let write = with(&auth_params(&client_id, &ch), "scope", "invoices:write");
    let page = authorize(iss, &write).await;
    assert_redirected_error(
        &decide(iss, &page.transaction(), "bob", "approve").await,
        "invalid_scope",
    );
    assert_redirected_error(
        &authorize(iss, &with(&auth_params(&client_id, &ch), "scope", "a\"b")).await,
        "invalid_scope",
    );
}

#[tokio::test]
async fn transactions_are_single_use_and_need_a_known_user() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let page = authorize(iss, &auth_params(&client_id, &ch)).await;
    let txn = page.transaction();
    assert_eq!(
        decide(iss, &txn, "alice", "approve").await.status,
        StatusCode::SEE_OTHER
    );
    assert_error_page(&decide(iss, &txn, "alice", "approve").await);
    assert_error_page(&decide(iss, "made-up", "alice", "approve").await);

    let page = authorize(iss, &auth_params(&client_id, &ch)).await;
    assert_error_page(&decide(iss, &page.transaction(), "mallory", "approve").await);

    // The page expires after ten minutes.
    let page = authorize(iss, &auth_params(&client_id, &ch)).await;
    env.advance(601);
    assert_error_page(&decide(iss, &page.transaction(), "alice", "approve").await);
}

async fn refresh(iss: &DevIssuer, client_id: &str, rt: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", rt),
    ];
    form.extend_from_slice(extra);
    post_form(iss, "/token", &form, None).await
}

async fn tokens(env: &Env, scope: &str) -> (String, Value) {
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let code = code_for(
        iss,
        &with(&auth_params(&client_id, &ch), "scope", scope),
        "alice",
    )
    .await;
    let body = redeem(iss, &client_id, &code).await.json();
    (client_id, body)
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let env = Env::new();
    let iss = &env.iss;
    let (client_id, body) = tokens(&env, "invoices:read").await;
    let rt1 = body["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh(iss, &client_id, &rt1, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let b2 = r.json();
    let rt2 = b2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "rotated");
    let claims = verify(iss, b2["access_token"].as_str().unwrap(), RESOURCE).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["tenant"], "acme");
    let rt3 = refresh(iss, &client_id, &rt2, &[]).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // rt1 was rotated away: its reuse is theft or a bug, and the family dies.
    assert_token_error(&refresh(iss, &client_id, &rt1, &[]).await, "invalid_grant");
    assert_token_error(&refresh(iss, &client_id, &rt3, &[]).await, "invalid_grant");
}

#[tokio::test]
async fn refresh_may_narrow_scope_only_and_keeps_its_resource_and_client() {
    let env = Env::new();
    let iss = &env.iss;
    let (client_id, body) = tokens(&env, "invoices:read invoices:write").await;
    let rt = body["refresh_token"].as_str().unwrap();
    let r = refresh(iss, &client_id, rt, &[("scope", "invoices:read")]).await;
    assert_eq!(r.json()["scope"], "invoices:read", "{}", r.body);
    // The successor keeps the original grant.
    let rt2 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh(iss, &client_id, &rt2, &[]).await;
    assert_eq!(r.json()["scope"], "invoices:read invoices:write");
    let rt3 = r.json()["refresh_token"].as_str().unwrap().to_owned();

    assert_token_error(
        &refresh(iss, &client_id, &rt3, &[("scope", "invoices:read admin")]).await,
        "invalid_scope",
    );
    assert_token_error(
        &refresh(
            iss,
            &client_id,
            &rt3,
            &[("resource", "http://127.0.0.1:4000/ledger")],
        )
        .await,
        "invalid_target",
    );
    let other = public_client(iss).await;
    assert_token_error(&refresh(iss, &other, &rt3, &[]).await, "invalid_grant");
    assert_token_error(
        &refresh(iss, &client_id, "made-up", &[]).await,
        "invalid_grant",
    );
    let r = refresh(iss, &client_id, &rt3, &[("resource", RESOURCE)]).await;
    assert_eq!(r.status, StatusCode::OK, "control: refusals do not rotate");
}

#[tokio::test]
async fn refresh_tokens_expire() {
    let env = Env::new();
    let (client_id, body) = tokens(&env, "invoices:read").await;
    env.advance(gatehouse_dev_issuer::REFRESH_TTL + 1);
    let r = refresh(
        &env.iss,
        &client_id,
        body["refresh_token"].as_str().unwrap(),
        &[],
    )
    .await;
    assert_token_error(&r, "invalid_grant");
}

#[tokio::test]
async fn client_without_refresh_grant_gets_no_refresh_token() {
    let env = Env::new();
    let iss = &env.iss;
    let info = register(
        iss,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(info["grant_types"], json!(["authorization_code"]));
    let client_id = info["client_id"].as_str().unwrap();
    let ch = challenge(VERIFIER);
    let code = code_for(iss, &auth_params(client_id, &ch), "alice").await;
    let body = redeem(iss, client_id, &code).await.json();
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none());
    let r = refresh(iss, client_id, "anything", &[]).await;
    assert_token_error(&r, "unauthorized_client");
}

#[tokio::test]
async fn confidential_clients_authenticate_the_registered_way() {
    let env = Env::new();
    let iss = &env.iss;
    let info = register(iss, json!({"redirect_uris": ["https://app.example/cb"]})).await;
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_basic");
    let id = info["client_id"].as_str().unwrap();
    let secret = info["client_secret"].as_str().unwrap();
    let ch = challenge(VERIFIER);
    let params = with(
        &auth_params(id, &ch),
        "redirect_uri",
        "https://app.example/cb",
    );
    let form = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", "https://app.example/cb".to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
        ]
    };
    let as_refs = |f: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { f.clone() };
    let send = |f: Vec<(&'static str, String)>, auth: Option<String>| async move {
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form(iss, "/token", &pairs, auth).await
    };

    // Public-style (no secret) and post-style are not how it registered.
    let code = code_for(iss, &params, "alice").await;
    let mut f = as_refs(&form(&code));
    f.push(("client_id", id.to_owned()));
    assert_token_error(&send(f.clone(), None).await, "invalid_client");
    let code = code_for(iss, &params, "alice").await;
    let mut f = form(&code);
    f.push(("client_id", id.to_owned()));
    f.push(("client_secret", secret.to_owned()));
    assert_token_error(&send(f, None).await, "invalid_client");
    let code = code_for(iss, &params, "alice").await;
    assert_token_error(
        &send(form(&code), Some(basic(id, "wrong"))).await,
        "invalid_client",
    );

    let code = code_for(iss, &params, "alice").await;
    let r = send(form(&code), Some(basic(id, secret))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn configured_and_public_clients_keep_to_their_grants() {
    let env = Env::new();
    let iss = &env.iss;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "x"),
        ("code_verifier", VERIFIER),
    ];
    assert_token_error(
        &post_form(iss, "/token", &form, Some(basic("agent", "s3cret"))).await,
        "unauthorized_client",
    );
    // client_credentials still works for configured clients alongside users.
    let r = post_form(
        iss,
        "/token",
        &[("grant_type", "client_credentials"), ("resource", RESOURCE)],
        Some(basic("agent", "s3cret")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // A public client cannot use client_credentials.
    let public = public_client(iss).await;
    let r = post_form(
        iss,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &public),
            ("resource", RESOURCE),
        ],
        None,
    )
    .await;
    assert_token_error(&r, "invalid_client");
}

#[tokio::test]
async fn a_bad_dpop_proof_is_refused_in_the_code_flow() {
    let env = Env::new();
    let iss = &env.iss;
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let code = code_for(iss, &auth_params(&client_id, &ch), "alice").await;
    let form = encode(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]);
    let req = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", "not-a-proof")
        .body(Body::from(form))
        .unwrap();
    assert_token_error(&call(iss, req).await, "invalid_dpop_proof");
}

// RFC 9449 §5: a public client that proves a DPoP key when it redeems its code gets a bound
// access token and a refresh token bound to the same key: a refresh without a proof, or with
// another key's, is refused; with the key it succeeds and stays bound.
#[tokio::test]
async fn a_public_clients_refresh_token_is_bound_to_its_dpop_key() {
    let env = Env::new();
    let iss = &env.iss;
    let key = gatehouse::jws::SigningKey::generate(gatehouse::jws::SigningAlg::ES256).unwrap();
    let other = gatehouse::jws::SigningKey::generate(gatehouse::jws::SigningAlg::ES256).unwrap();
    let jkt =
        gatehouse::verify::dpop::jwk_thumbprint(key.public_jwk().as_object().unwrap()).unwrap();
    let with_proof = |form: String, key: Option<&gatehouse::jws::SigningKey>| {
        let mut b =
            Request::post("/token").header("content-type", "application/x-www-form-urlencoded");
        if let Some(k) = key {
            b = b.header("dpop", dpop_proof(k, &iss.token_endpoint()));
        }
        b.body(Body::from(form)).unwrap()
    };
    let client_id = public_client(iss).await;
    let ch = challenge(VERIFIER);
    let code = code_for(iss, &auth_params(&client_id, &ch), "alice").await;
    let form = encode(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]);
    let r = call(iss, with_proof(form, Some(&key))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = r.json();
    assert_eq!(body["token_type"], "DPoP");
    let claims = verify(iss, body["access_token"].as_str().unwrap(), RESOURCE).await;
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str());
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    let refresh_form = |rt: &str| {
        encode(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", rt),
        ])
    };
    assert_token_error(
        &call(iss, with_proof(refresh_form(&rt), None)).await,
        "invalid_grant",
    );
    assert_token_error(
        &call(iss, with_proof(refresh_form(&rt), Some(&other))).await,
        "invalid_grant",
    );
    // Refused attempts did not use the token up: the holder of the key still refreshes.
    let r = call(iss, with_proof(refresh_form(&rt), Some(&key))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = r.json();
    let claims = verify(iss, body["access_token"].as_str().unwrap(), RESOURCE).await;
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str());
    // The successor is bound too.
    let next = body["refresh_token"].as_str().unwrap();
    assert_token_error(
        &call(iss, with_proof(refresh_form(next), None)).await,
        "invalid_grant",
    );
}

#[tokio::test]
async fn metadata_with_users_advertises_exactly_the_interactive_flows() {
    let env = Env::new();
    let m = env.iss.metadata();
    assert_eq!(m["authorization_endpoint"], format!("{ISSUER}/authorize"));
    assert_eq!(m["registration_endpoint"], format!("{ISSUER}/register"));
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["response_modes_supported"], json!(["query"]));
    assert_eq!(
        m["grant_types_supported"],
        json!(["client_credentials", "authorization_code", "refresh_token"])
    );
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert_eq!(m["subject_types_supported"], json!(["public"]));
    assert_eq!(m["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(
        m["scopes_supported"],
        json!(["invoices:read", "invoices:write", "openid"])
    );
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = call(&env.iss, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(r.json(), m, "{path}");
    }

    let plain = DevIssuer::new(DevIssuerConfig {
        issuer: Some(ISSUER.into()),
        clients: vec![DevClient::new("agent", "s3cret", ["invoices:read"])],
        ..DevIssuerConfig::default()
    })
    .unwrap();
    let m = plain.metadata();
    for absent in [
        "authorization_endpoint",
        "registration_endpoint",
        "response_types_supported",
        "code_challenge_methods_supported",
        "authorization_response_iss_parameter_supported",
        "client_id_metadata_document_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(m.get(absent).is_none(), "{absent}");
    }
    assert_eq!(m["scopes_supported"], json!(["invoices:read"]));
    for path in ["/authorize", "/register"] {
        let r = call(&plain, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = post_form(
        &plain,
        "/token",
        &[("grant_type", "authorization_code"), ("client_id", "x")],
        None,
    )
    .await;
    assert_token_error(&r, "invalid_client");
}

#[tokio::test]
async fn browser_clients_get_cors_on_discovery_token_and_registration() {
    let env = Env::new();
    for path in [
        "/token",
        "/register",
        "/jwks",
        "/.well-known/oauth-authorization-server",
    ] {
        let req = Request::options(path)
            .header("origin", "http://localhost:6274")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,dpop,authorization",
            )
            .body(Body::empty())
            .unwrap();
        let r = call(&env.iss, req).await;
        assert!(r.status.is_success(), "{path}: {r:?}");
        assert_eq!(r.headers["access-control-allow-origin"], "*", "{path}");
        let allowed = r.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        for h in ["authorization", "content-type", "dpop"] {
            assert!(allowed.contains(h), "{path}: {allowed}");
        }
        assert!(r.headers.get("access-control-allow-credentials").is_none());
    }
    let req = Request::get("/jwks")
        .header("origin", "http://localhost:6274")
        .body(Body::empty())
        .unwrap();
    let r = call(&env.iss, req).await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let exposed = r.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("dpop-nonce") && exposed.contains("www-authenticate"),
        "{exposed}"
    );
    // The authorization endpoint is navigated to, not fetched.
    let req = Request::options("/authorize")
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    assert!(
        call(&env.iss, req)
            .await
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
}
