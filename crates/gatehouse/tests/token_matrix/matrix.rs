//! The token matrix: one row per token shape, run in order against one context (issuers X and
//! Y trusted, X's introspection endpoint for opaque tokens, every unknown `kid` allowed one
//! refresh). Each row names its spec-requirements.md rows.

use gatehouse_testkit::{Alg, TestKey, malformed_tokens, now};
use serde_json::json;

use crate::case::{Case, Echo, Verify};
use crate::context::{Auth, TENANT_CLAIM, TestContext, Y_CLIENT, Y_SUBJECT};

/// `token` with the character `from_end` places before its end replaced by another base64url
/// character: same length, same shape, different token.
fn flip(token: &str, from_end: usize) -> String {
    let mut b = token.as_bytes().to_vec();
    let i = b.len() - from_end;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

fn malformed(name: &str) -> String {
    malformed_tokens()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("testkit has no malformed token {name:?}"))
        .1
}

pub(crate) fn cases(ctx: &TestContext) -> Vec<Case> {
    let x = &ctx.x;
    let y = ctx.y();
    let echo_x = || Echo::new(x.issuer());
    let bearer = |t: &str| Auth::Bearer(t.to_owned());
    let attacker_es = ctx.attacker.key(Alg::ES256).clone();
    let x_es_kid = x.current_kid();

    // Tokens used by more than one row.
    let valid = x.token().claim(TENANT_CLAIM, "acme").sign();
    let expired = x.token().expires_in(-600).sign();
    let unpublished = TestKey::generate(Alg::ES256);
    let read_only = x.token().scope("invoices:read").sign();

    // Opaque tokens, programmed at X's introspection endpoint.
    let opaque_active = "opaque-active-7d1f";
    let opaque_read = "opaque-read-only-19a2";
    let opaque_aud = "opaque-wrong-aud-4c0e";
    let opaque_iss = "opaque-wrong-iss-8b3d";
    let opaque_expired = "opaque-expired-2e77";
    let opaque_revoked = "opaque-revoked-5a90";
    let active = |mut v: serde_json::Value, patch: serde_json::Value| {
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    x.set_introspection(
        opaque_active,
        active(x.active_introspection(300), json!({"tenant": "globex"})),
    );
    x.set_introspection(
        opaque_read,
        active(
            x.active_introspection(300),
            json!({"scope": "invoices:read"}),
        ),
    );
    x.set_introspection(
        opaque_aud,
        active(
            x.active_introspection(300),
            json!({"aud": "https://other.example/mcp"}),
        ),
    );
    x.set_introspection(
        opaque_iss,
        active(
            x.active_introspection(300),
            json!({"iss": "https://other.example"}),
        ),
    );
    x.set_introspection(
        opaque_expired,
        active(
            x.active_introspection(300),
            json!({"exp": now() - 600, "iat": now() - 900}),
        ),
    );
    x.set_introspection(opaque_revoked, x.active_introspection(300));

    vec![
        // ------------------------------------------------------------------ accepted
        // A21, A25, E5–E9, E12: a well-formed RFC 9068 token; the tool sees issuer, subject,
        // client, scopes and tenant, and never the token (A35: checked in edge_router).
        Case::ok(
            "valid ES256",
            "A21 A25 E5-E9 E12",
            &valid,
            echo_x().tenant("acme"),
        ),
        // E8, E14: every published algorithm verifies with its own key.
        Case::ok(
            "valid RS256",
            "E8 E14",
            &x.token().alg(Alg::RS256).subject("rs256-user").sign(),
            echo_x().sub("rs256-user"),
        ),
        Case::ok(
            "valid PS256",
            "E8 E14",
            &x.token().alg(Alg::PS256).subject("ps256-user").sign(),
            echo_x().sub("ps256-user"),
        ),
        Case::ok(
            "valid EdDSA",
            "E8 E14",
            &x.token()
                .alg(Alg::EdDSA)
                .subject("eddsa-user")
                .claim(TENANT_CLAIM, "initech")
                .sign(),
            echo_x().sub("eddsa-user").tenant("initech"),
        ),
        // A30: a second trusted issuer; its tokens carry its own identity.
        Case::ok(
            "valid token of the second issuer Y",
            "A30",
            &y.valid_token(),
            Echo::new(y.issuer()).sub(Y_SUBJECT).client(Y_CLIENT),
        ),
        // E5: the media-type form of typ.
        Case::ok(
            "typ application/at+jwt",
            "E5",
            &x.token().header_typ("application/at+jwt").sign(),
            echo_x(),
        ),
        // A22, E7: aud may be an array; it only has to contain us.
        Case::ok(
            "aud array containing us",
            "A22 E7",
            &x.token()
                .aud(json!(["https://other.example/mcp", ctx.resource]))
                .sign(),
            echo_x(),
        ),
        // E12: client id from azp when client_id is absent (Entra/Keycloak shape).
        Case::ok(
            "client id from azp",
            "E12",
            &x.token()
                .without("client_id")
                .claim("azp", "azp-app")
                .sign(),
            echo_x().client("azp-app"),
        ),
        // E9: exp a few seconds ago is within the default 60 s leeway.
        Case::ok(
            "exp 5 s ago (within leeway)",
            "E9",
            &x.token().expires_in(-5).sign(),
            echo_x(),
        ),
        // A24: the scheme name is case-insensitive.
        Case::ok(
            "lowercase bearer scheme",
            "A24",
            "",
            echo_x().sub("lowercase-user"),
        )
        .auth(Auth::Raw(vec![format!(
            "bearer {}",
            x.token().subject("lowercase-user").sign()
        )])),
        // ------------------------------------------------------------------ verified-token cache
        // A27, peers.md gap 6: the same token again does no verification work at all.
        Case::ok(
            "same token again (cache hit)",
            "A27",
            &valid,
            echo_x().tenant("acme"),
        )
        .verify(Verify::Hit),
        // A cache hit needs the exact token: one character off is verified (and refused).
        Case::invalid(
            ctx,
            "cached token with one signature character changed",
            "A27 E8",
            &flip(&valid, 20),
            "invalid.signature",
        ),
        // Definitive refusals are remembered briefly: a flood of one bad token costs a lookup.
        Case::invalid(ctx, "expired", "A16 E9 E11", &expired, "invalid.expired"),
        Case::invalid(
            ctx,
            "expired again (negative cache)",
            "A16 E9",
            &expired,
            "invalid.expired",
        )
        .verify(Verify::NegativeHit),
        // ------------------------------------------------------------------ algorithms
        // E8, E14, RFC 8725 §3.1: alg none is never accepted.
        Case::invalid(
            ctx,
            "alg none",
            "E8 E14",
            &x.token().sign_alg_none(),
            "invalid.algorithm",
        ),
        // E14, RFC 8725 §2.1: RS256→HS256 key confusion with the RSA public key as secret.
        Case::invalid(
            ctx,
            "HS256 signed with the RSA public key (SPKI PEM)",
            "E14",
            &x.token()
                .alg(Alg::RS256)
                .hs256(x.current_key(Alg::RS256).public_key_pem())
                .sign(),
            "invalid.algorithm",
        ),
        Case::invalid(
            ctx,
            "HS256 signed with the RSA public key (PKCS#1 PEM)",
            "E14",
            &x.token()
                .alg(Alg::RS256)
                .hs256(
                    x.current_key(Alg::RS256)
                        .rsa_public_key_pkcs1_pem()
                        .unwrap(),
                )
                .sign(),
            "invalid.algorithm",
        ),
        // E14: the key's algorithm decides, not the header (ES256 key, header RS256).
        Case::invalid(
            ctx,
            "header alg RS256 on an ES256 key",
            "E14",
            &x.token().header_alg("RS256").sign(),
            "invalid.algorithm",
        ),
        // RFC 7515 §4.1.11: unknown critical extensions are refused.
        Case::invalid(
            ctx,
            "crit header",
            "E8",
            &x.token().crit(&["urn:example:unknown"]).sign(),
            "invalid.header",
        ),
        // ------------------------------------------------------------------ keys
        // E8: a kid nobody published → one refresh, then refused.
        Case::invalid(
            ctx,
            "unknown kid",
            "E8",
            &x.token().key(&unpublished).sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        // Undecided outcomes are not cached: the next such request may refresh again.
        Case::invalid(
            ctx,
            "unknown kid again (not negatively cached)",
            "E8",
            &x.token().key(&unpublished).sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        // A kid is an opaque string: never a path, URL or quoted fragment to interpret.
        Case::invalid(
            ctx,
            "kid with path characters",
            "E8",
            &x.token().kid("../../.well-known/jwks/../es256").sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        Case::invalid(
            ctx,
            "kid with quote characters",
            "E8",
            &x.token().kid(r#"es256" or "1"="1'"#).sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        Case::invalid(
            ctx,
            "kid that is a URL",
            "E8",
            &x.token().kid(&ctx.attacker.jwks_url()).sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        // E8, RFC 7515 §4.1.2/§4.1.3/§4.1.5: jku, jwk and x5u never fetch or supply keys.
        // The attacker serves a JWKS with the signing key at every URL: following it would
        // both accept the token and count a hit.
        Case::invalid(
            ctx,
            "jku pointing at the attacker",
            "E8",
            &x.token()
                .key(&attacker_es)
                .jku(&ctx.attacker.jwks_url())
                .sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        Case::invalid(
            ctx,
            "x5u pointing at the attacker",
            "E8",
            &x.token()
                .key(&attacker_es)
                .x5u(&ctx.attacker.x5u_url())
                .sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        Case::invalid(
            ctx,
            "embedded jwk of the attacker",
            "E8",
            &x.token()
                .key(&attacker_es)
                .jwk(attacker_es.public_jwk())
                .sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        Case::invalid(
            ctx,
            "jku with our kid, attacker's signature",
            "E8",
            &x.token()
                .key(&attacker_es)
                .kid(&x_es_kid)
                .jku(&ctx.attacker.jwks_url())
                .sign(),
            "invalid.signature",
        ),
        Case::invalid(
            ctx,
            "bad signature",
            "E8",
            &x.token().sign_with_bad_signature(),
            "invalid.signature",
        ),
        // ------------------------------------------------------------------ issuers
        // A23, A30, E6: iss exactly one of the configured issuers.
        Case::invalid(
            ctx,
            "wrong iss",
            "A23 A30 E6",
            &x.token().iss("https://evil.example").sign(),
            "invalid.issuer_unknown",
        ),
        Case::invalid(
            ctx,
            "iss with a trailing slash",
            "E6",
            &x.token().iss(&format!("{}/", x.issuer())).sign(),
            "invalid.issuer_unknown",
        ),
        Case::invalid(
            ctx,
            "missing iss",
            "E6 E12",
            &x.token().without("iss").sign(),
            "invalid.claim_missing",
        ),
        // A30, RFC 8725 §3.8: a key of issuer Y never validates a token claiming issuer X;
        // only X's JWKS is consulted (one refresh for the unknown kid), Y's is not.
        Case::invalid(
            ctx,
            "X's claims signed with Y's key",
            "A30 E8",
            &x.token().key(&y.current_key(Alg::ES256)).sign(),
            "invalid.kid_unknown",
        )
        .jwks(1),
        Case::invalid(
            ctx,
            "X's claims signed with Y's key under X's kid",
            "A30 E8",
            &x.token()
                .key(&y.current_key(Alg::ES256))
                .kid(&x_es_kid)
                .sign(),
            "invalid.signature",
        ),
        Case::invalid(
            ctx,
            "Y's claims signed with X's key",
            "A30 E8",
            &y.token().key(&x.current_key(Alg::ES256)).sign(),
            "invalid.kid_unknown",
        )
        .jwks_y(1),
        // ------------------------------------------------------------------ audience
        // A22, D1, E7: a token for another resource is never accepted (no passthrough).
        Case::invalid(
            ctx,
            "wrong aud",
            "A22 D1 E7",
            &x.token().aud("https://other.example/mcp").sign(),
            "invalid.audience",
        ),
        Case::invalid(
            ctx,
            "aud array without us",
            "A22 E7",
            &x.token()
                .aud(json!(["https://a.example/mcp", "https://b.example/mcp"]))
                .sign(),
            "invalid.audience",
        ),
        Case::invalid(
            ctx,
            "aud with a trailing slash",
            "A22 A28",
            &x.token().aud(format!("{}/", ctx.resource)).sign(),
            "invalid.audience",
        ),
        Case::invalid(
            ctx,
            "missing aud",
            "A22 E12",
            &x.token().without("aud").sign(),
            "invalid.claim_missing",
        ),
        Case::invalid(
            ctx,
            "aud: []",
            "A22",
            &x.token().aud(json!([])).sign(),
            "invalid.claim_missing",
        ),
        // ------------------------------------------------------------------ time
        Case::invalid(
            ctx,
            "nbf in the future",
            "A21",
            &x.token().not_before_in(600).sign(),
            "invalid.nbf",
        ),
        Case::invalid(
            ctx,
            "iat far in the future",
            "A21",
            &x.token().iat(now() + 3600).sign(),
            "invalid.iat",
        ),
        Case::invalid(
            ctx,
            "missing exp",
            "E9 E12",
            &x.token().without("exp").sign(),
            "invalid.claim_missing",
        ),
        // ------------------------------------------------------------------ typ
        // E5, E13: an ID-token-shaped JWT is not an access token (default: strict RFC 9068).
        Case::invalid(
            ctx,
            "typ JWT",
            "E5 E13",
            &x.token().header_typ("JWT").sign(),
            "invalid.typ",
        ),
        Case::invalid(
            ctx,
            "missing typ",
            "E5 E13",
            &x.token().no_typ().sign(),
            "invalid.typ",
        ),
        // ------------------------------------------------------------------ shape
        Case::invalid(
            ctx,
            "truncated signature",
            "A16 E11",
            &valid[..valid.len() - 10],
            "invalid.signature",
        ),
        // Cut inside the payload it is no longer JWS-shaped: treated as opaque, and X's
        // introspection endpoint does not know it.
        Case::invalid(
            ctx,
            "truncated inside the payload",
            "A16 E11",
            &valid[..valid.find('.').unwrap() + 20],
            "invalid.inactive",
        )
        .introspections(1),
        Case::invalid(
            ctx,
            "garbage base64 in the payload",
            "A16 E11",
            &format!("{}.a+b/c.c2ln", valid.split('.').next().unwrap()),
            "invalid.malformed",
        ),
        Case::invalid(
            ctx,
            "payload not JSON",
            "A16 E11",
            &malformed("payload not JSON"),
            "invalid.malformed",
        ),
        Case::invalid(
            ctx,
            "payload not UTF-8",
            "A16 E11",
            &malformed("payload not UTF-8"),
            "invalid.malformed",
        ),
        // A20, E4: characters no bearer token can contain → malformed request, not verified.
        Case::malformed(
            ctx,
            "garbage that is not base64 at all",
            "A20",
            bearer("%%%.^^^.$$$"),
            "request.bad_token_characters",
        ),
        // Token cap: refused before any parsing or verification.
        Case::malformed(
            ctx,
            "100 KB token",
            "A20",
            bearer(&"A".repeat(100 * 1024)),
            "request.token_too_large",
        ),
        Case::malformed(
            ctx,
            "empty bearer token",
            "A20",
            Auth::Raw(vec!["Bearer ".into()]),
            "request.empty_token",
        ),
        Case::malformed(
            ctx,
            "two Authorization headers",
            "A20 E4",
            Auth::Raw(vec![
                format!("Bearer {valid}"),
                format!("Bearer {read_only}"),
            ]),
            "request.multiple_authorization",
        ),
        Case::malformed(
            ctx,
            "header token and query token",
            "A24 E4",
            Auth::BearerAndQuery(valid.clone()),
            "request.token_sent_two_ways",
        ),
        // ------------------------------------------------------------------ no credentials
        Case::no_credentials(ctx, "no Authorization header", "A14 A15 E1 E3", Auth::None),
        // A24: a query-string token is ignored, never accepted, and is not an error.
        Case::no_credentials(
            ctx,
            "query-string token only",
            "A24 E17",
            Auth::Query(valid.clone()),
        ),
        Case::no_credentials(
            ctx,
            "Basic scheme",
            "A14 E1",
            Auth::Raw(vec!["Basic dXNlcjpwYXNz".into()]),
        ),
        // ------------------------------------------------------------------ scopes
        // A17, A18: a read token calling void_invoice → 403 naming invoices:write.
        Case::insufficient(
            ctx,
            "read token calls void_invoice",
            "A17 A18 E2",
            &read_only,
            "void_invoice",
            "invoices:write",
        )
        .denial("void_invoice:invoices:write"),
        // The same token, now from the cache: the tool scope is checked per request.
        Case::ok(
            "read token calls lookup_invoice",
            "A17 A25",
            &read_only,
            echo_x().scopes("invoices:read"),
        )
        .verify(Verify::Hit),
        // A19: invoices:write implies invoices:read (route scope).
        Case::ok(
            "write-only token calls lookup_invoice (hierarchy)",
            "A19",
            &x.token().scope("invoices:write").sign(),
            echo_x().scopes("invoices:write"),
        ),
        // scp as an array (Entra/Okta shape).
        Case::ok(
            "scope via scp array",
            "A21",
            &x.token()
                .without("scope")
                .claim("scp", json!(["invoices:write"]))
                .sign(),
            echo_x().tool("void_invoice").scopes("invoices:write"),
        ),
        Case::insufficient(
            ctx,
            "scp array with read only calls void_invoice",
            "A17 A18",
            &x.token()
                .without("scope")
                .claim("scp", json!(["invoices:read"]))
                .sign(),
            "void_invoice",
            "invoices:write",
        )
        .denial("void_invoice:invoices:write"),
        Case::insufficient(
            ctx,
            "token without scopes calls lookup_invoice",
            "A15 A17",
            &x.token().scope("profile").sign(),
            "lookup_invoice",
            "invoices:read",
        )
        // Every tools/call refused for scope reaches the observer (audit), route scope too.
        .denial("lookup_invoice:invoices:read"),
        // A18: one challenge with everything void_invoice needs, not the route scope first
        // and the tool scope on the next round trip.
        Case::insufficient(
            ctx,
            "token without scopes calls void_invoice",
            "A18",
            &x.token().scope("profile").sign(),
            "void_invoice",
            "invoices:write",
        )
        .denial("void_invoice:invoices:write"),
        // ------------------------------------------------------------------ introspection
        // E15: opaque tokens are introspected with the RS's credentials.
        Case::ok(
            "opaque token, active",
            "E15 A21",
            opaque_active,
            echo_x().tenant("globex").introspected(),
        )
        .introspections(1),
        // E15, A27: the result is cached; the second request makes no introspection call.
        Case::ok(
            "opaque token again (cached)",
            "E15 A27",
            opaque_active,
            echo_x().tenant("globex").introspected(),
        )
        .verify(Verify::Hit),
        Case::invalid(
            ctx,
            "opaque token one character different",
            "A27",
            &flip(opaque_active, 1),
            "invalid.inactive",
        )
        .introspections(1),
        Case::invalid(
            ctx,
            "opaque token, active:false",
            "E15 A16",
            "opaque-unknown-0000",
            "invalid.inactive",
        )
        .introspections(1),
        Case::invalid(
            ctx,
            "opaque token, audience mismatch",
            "E15 A22",
            opaque_aud,
            "invalid.audience",
        )
        .introspections(1),
        Case::invalid(
            ctx,
            "opaque token, issuer mismatch",
            "E15 A30",
            opaque_iss,
            "invalid.issuer_mismatch",
        )
        .introspections(1),
        Case::invalid(
            ctx,
            "opaque token, active but exp in the past",
            "E15 E9",
            opaque_expired,
            "invalid.expired",
        )
        .introspections(1),
        Case::insufficient(
            ctx,
            "opaque read-only token calls void_invoice",
            "E15 A17 A18",
            opaque_read,
            "void_invoice",
            "invoices:write",
        )
        .denial("void_invoice:invoices:write")
        .introspections(1),
        Case::ok(
            "opaque token before revocation",
            "E15",
            opaque_revoked,
            echo_x().introspected(),
        )
        .introspections(1),
    ]
}
