//! Writes the seed inputs of every fuzz target into `fuzz/seeds/<target>/<name>`, from the
//! inputs the test suite uses: tokens minted by the testkit's forge with the fixture keys (and
//! its malformed and hostile tokens), JWKS documents with the keys and junk the tests publish,
//! introspection answers of the introspection tests, JSON-RPC bodies of every method at every
//! revision, the `Mcp-*` headers, and the shipped `gatehouse.example.toml`.
//!
//! ```text
//! cargo run -p gatehouse-fuzz-targets --example seed_corpus
//! ```
//!
//! The seeds stay as they are, named, beside the corpora the campaigns grow and minimise
//! (`fuzz/corpus/`): `fuzz/run` reads both, and the test suite replays both. They are regenerated
//! only when the inputs the tests use change. Seeds are deterministic except for the signatures of
//! the PS* and ES256 tokens (randomised signing).

use std::path::{Path, PathBuf};

use gatehouse::TokenVerifier as _;
use gatehouse_fuzz_targets::{AUDIENCE, FIXED_JWKS, ISSUER, fixed_jwt_verifier};
use gatehouse_testkit::{
    Alg, TestKey, TokenBuilder, b64url, junk_enc_rsa_jwk, malformed_tokens, unknown_kty_jwk,
};
use serde_json::{Value, json};

/// 2100-01-01: seed tokens stay unexpired as long as this corpus matters.
const FAR_FUTURE: i64 = 4_102_444_800;
const ISSUED: i64 = 1_700_000_000;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = root.join("fuzz/seeds");
    let mut out = Out { corpus, count: 0 };
    bearer(&mut out);
    jwt(&mut out);
    jwks(&mut out);
    introspection(&mut out);
    tool_name(&mut out);
    config(&mut out, &root);
    println!("wrote {} seed files under fuzz/seeds/", out.count);
}

struct Out {
    corpus: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, data: impl AsRef<[u8]>) {
        let dir = self.corpus.join(target);
        std::fs::create_dir_all(&dir).expect("create seeds dir");
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        std::fs::write(dir.join(name), data).expect("write seed");
        self.count += 1;
    }
}

fn fixture_keys() -> [TestKey; 3] {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let pem = |f: &str| std::fs::read_to_string(dir.join(f)).expect("fixture key");
    [
        TestKey::from_pkcs8_pem(Alg::RS256, &pem("rsa.pem"), "rsa").expect("rsa.pem"),
        TestKey::from_pkcs8_pem(Alg::ES256, &pem("ec.pem"), "ec").expect("ec.pem"),
        TestKey::from_pkcs8_pem(Alg::EdDSA, &pem("ed25519.pem"), "ed").expect("ed25519.pem"),
    ]
}

/// A token the fixed verifier accepts, to be edited.
fn good(key: &TestKey) -> TokenBuilder {
    TokenBuilder::new(key.clone()).claims(json!({
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "client_id": "client-1",
        "scope": "invoices:read invoices:write",
        "permissions": ["reports:read"],
        "tid": "tenant-7",
        "iat": ISSUED,
        "exp": FAR_FUTURE,
        "jti": "seed",
    }))
}

fn bearer(out: &mut Out) {
    let [rsa, ..] = fixture_keys();
    let jwt = good(&rsa).sign();
    // The cases of http/bearer.rs's table: header values one per line, then NUL and the query.
    let cases: &[(&str, String)] = &[
        ("jwt", format!("Bearer {jwt}")),
        ("all-chars", "Bearer abc.DEF-_~+/==".into()),
        ("lowercase", "bearer abc".into()),
        ("spaces", "BEARER   abc".into()),
        ("none", String::new()),
        ("query-only", "\0access_token=abc".into()),
        ("basic", "Basic dXNlcjpwYXNz".into()),
        ("no-space", "Bearerabc".into()),
        ("empty", "Bearer".into()),
        ("empty-spaces", "Bearer    ".into()),
        ("two-headers", "Bearer a\nBearer b".into()),
        ("inner-space", "Bearer a b".into()),
        ("quote", "Bearer a\"b".into()),
        ("inner-equals", "Bearer a=b".into()),
        ("only-equals", "Bearer ===".into()),
        ("comma", "Bearer a,b".into()),
        ("non-ascii", "Bearer \u{e9}".into()),
        ("large", format!("Bearer {}", "a".repeat(65))),
        ("huge-basic", format!("Basic {}", "a".repeat(1000))),
        ("two-ways", "Bearer abc\0x=1&access_token=abc".into()),
        ("two-ways-encoded", "Bearer abc\0access%5Ftoken=abc".into()),
        ("query-value", "Bearer abc\0x=access_token".into()),
        ("form-plus", "Bearer abc\0access+token=x&a=%ZZ".into()),
    ];
    for (name, data) in cases {
        out.put("bearer", name, data);
    }
}

fn jwt(out: &mut Out) {
    let [rsa, ec, ed] = fixture_keys();
    let verifier = fixed_jwt_verifier();
    let mut accepted = Vec::new();
    for alg in [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
    ] {
        accepted.push((
            format!("valid-{alg}"),
            good(&rsa.clone().with_alg(alg)).sign(),
        ));
    }
    accepted.push(("valid-ES256".into(), good(&ec).sign()));
    accepted.push(("valid-EdDSA".into(), good(&ed).sign()));
    accepted.push((
        "valid-aud-array".into(),
        good(&ec)
            .aud(json!(["https://other.example", AUDIENCE]))
            .sign(),
    ));
    accepted.push((
        "valid-typ-media".into(),
        good(&ed).header_typ("application/AT+JWT").sign(),
    ));
    accepted.push((
        "valid-scp-array".into(),
        good(&rsa)
            .without("scope")
            .claim("scp", json!(["a", "b"]))
            .sign(),
    ));
    accepted.push((
        "valid-no-sub".into(),
        good(&ec).without("sub").claim("azp", "client-2").sign(),
    ));
    accepted.push((
        "valid-float-exp".into(),
        good(&ed).claim("exp", 4_102_444_800.5).sign(),
    ));
    for (name, token) in &accepted {
        let caller = verifier.verify_locally(&gatehouse::AccessToken::new(token.as_str()));
        assert!(
            matches!(caller, Some(Ok(_))),
            "seed {name} is not accepted: {caller:?}"
        );
        out.put("jwt", name, token);
    }

    let other = TestKey::generate(Alg::RS256).with_kid("rsa");
    let refused: Vec<(&str, String)> = vec![
        ("wrong-aud", good(&rsa).aud("https://other.example/mcp").sign()),
        ("aud-empty-array", good(&rsa).aud(json!([])).sign()),
        ("wrong-iss", good(&rsa).iss("https://issuer.fuzz.example/").sign()),
        ("expired", good(&ec).exp(ISSUED).sign()),
        ("not-yet-valid", good(&ec).claim("nbf", FAR_FUTURE - 1).sign()),
        ("issued-in-future", good(&ec).iat(FAR_FUTURE - 1).sign()),
        ("exp-string", good(&ed).claim("exp", "4102444800").sign()),
        ("sub-number", good(&ed).claim("sub", 7).sign()),
        ("alg-none", good(&rsa).sign_alg_none()),
        ("bad-signature", good(&rsa).sign_with_bad_signature()),
        ("other-key-same-kid", good(&other).sign()),
        ("unknown-kid", good(&rsa).kid("rotated-in").sign()),
        ("no-kid", good(&rsa).no_kid().sign()),
        ("typ-jwt", good(&rsa).header_typ("JWT").sign()),
        ("no-typ", good(&rsa).no_typ().sign()),
        ("crit", good(&rsa).crit(&["exp"]).sign()),
        ("nonce", good(&rsa).header("nonce", "n").sign()),
        ("jku", good(&rsa).jku("https://evil.example/jwks").sign()),
        ("x5u", good(&rsa).x5u("https://evil.example/x5u").sign()),
        ("embedded-jwk", good(&other).jwk(other.public_jwk()).sign()),
        ("rs-key-as-es", good(&rsa).header_alg("ES256").sign()),
        ("ec-key-as-rs", good(&ec).header_alg("RS256").sign()),
        ("hs256-confusion", good(&rsa).hs256(rsa.public_key_pem()).sign()),
        ("alg-lowercase", good(&rsa).header_alg("rs256").sign()),
        ("alg-unknown", good(&rsa).header_alg("RS1024").sign()),
        (
            "duplicate-aud",
            good(&rsa)
                .raw_payload(format!(
                    r#"{{"iss":"{ISSUER}","aud":"https://other.example","aud":"{AUDIENCE}","exp":{FAR_FUTURE}}}"#
                ))
                .sign(),
        ),
        ("payload-array", good(&rsa).raw_payload("[1]").sign()),
        ("header-raw", good(&rsa).raw_header(r#"{"alg":"RS256","typ":"at+jwt","kid":"rsa","alg":"none"}"#).sign()),
    ];
    for (name, token) in refused {
        out.put("jwt", name, token);
    }
    for (name, token) in malformed_tokens() {
        if token.len() <= 4096 {
            out.put("jwt", &format!("malformed-{name}"), token);
        }
    }
    out.put(
        "jwt",
        "three-b64-segments",
        format!("{}.{}.{}", b64url(b"{}"), b64url(b"{}"), b64url(b"x")),
    );
}

fn jwks(out: &mut Out) {
    let fixed: Value = serde_json::from_str(FIXED_JWKS).expect("fixture JWKS");
    out.put("jwks", "fixture", FIXED_JWKS);
    let [rsa, ec, ed] = fixture_keys();
    let keys = |ks: Vec<Value>| serde_json::to_vec(&json!({ "keys": ks })).expect("JSON");
    out.put(
        "jwks",
        "with-alg",
        keys(vec![rsa.public_jwk(), ec.public_jwk(), ed.public_jwk()]),
    );
    out.put(
        "jwks",
        "rsa-ps256",
        keys(vec![rsa.clone().with_alg(Alg::PS256).public_jwk()]),
    );
    // Keycloak's encryption key next to a signing key; an unknown kty; a symmetric key.
    out.put(
        "jwks",
        "keycloak-enc",
        keys(vec![junk_enc_rsa_jwk(), rsa.public_jwk_without_alg()]),
    );
    out.put(
        "jwks",
        "unknown-kty",
        keys(vec![unknown_kty_jwk(), ec.public_jwk()]),
    );
    out.put("jwks", "oct", br#"{"keys": [{"kty": "oct", "k": "AAAA"}]}"#);
    out.put(
        "jwks",
        "hs256-jwk",
        keys(vec![TestKey::hmac(vec![7u8; 32]).public_jwk()]),
    );
    let mut key_ops = ec.public_jwk();
    key_ops["key_ops"] = json!(["verify"]);
    let mut enc_ops = ed.public_jwk();
    enc_ops["key_ops"] = json!(["encrypt"]);
    out.put("jwks", "key-ops", keys(vec![key_ops, enc_ops]));
    let mut wrong_alg = ec.public_jwk();
    wrong_alg["alg"] = json!("RS256");
    let mut p384 = ec.public_jwk();
    p384["crv"] = json!("P-384");
    let mut secp = ec.public_jwk();
    secp["crv"] = json!("secp256k1");
    out.put("jwks", "ec-odd", keys(vec![wrong_alg, p384, secp]));
    let mut small = rsa.public_jwk();
    small["n"] = json!(b64url(&[0xC5; 128]));
    let mut zero_e = rsa.public_jwk();
    zero_e["e"] = json!("");
    out.put("jwks", "rsa-odd", keys(vec![small, zero_e]));
    let mut x448 = ed.public_jwk();
    x448["crv"] = json!("X25519");
    out.put("jwks", "okp-odd", keys(vec![x448]));
    let mut dup = fixed.clone();
    if let Some(ks) = dup["keys"].as_array_mut() {
        let first = ks[0].clone();
        ks.push(first);
    }
    out.put(
        "jwks",
        "duplicate-kid",
        serde_json::to_vec(&dup).expect("JSON"),
    );
    out.put("jwks", "empty-object", "{}");
    out.put("jwks", "empty-keys", r#"{"keys": []}"#);
    out.put("jwks", "keys-not-array", r#"{"keys": {"kty": "RSA"}}"#);
    out.put(
        "jwks",
        "nulls",
        r#"{"keys": [null, 1, "x", [], {"kty": null, "use": null}]}"#,
    );
}

fn introspection(out: &mut Out) {
    let active = json!({
        "active": true,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "scope": "invoices:read invoices:write",
        "permissions": ["reports:read"],
        "tenant": "tenant-7",
        "exp": FAR_FUTURE,
        "iat": ISSUED,
        "token_type": "Bearer",
    });
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v = active.clone();
        f(v.as_object_mut().expect("object"));
        serde_json::to_vec(&v).expect("JSON")
    };
    out.put("introspection", "active", edit(&|_| {}));
    out.put("introspection", "inactive", r#"{"active": false}"#);
    out.put("introspection", "no-aud", edit(&|m| drop(m.remove("aud"))));
    out.put(
        "introspection",
        "no-iss-no-exp",
        edit(&|m| {
            m.remove("iss");
            m.remove("exp");
        }),
    );
    out.put(
        "introspection",
        "aud-array",
        edit(&|m| drop(m.insert("aud".into(), json!(["x", AUDIENCE])))),
    );
    out.put(
        "introspection",
        "aud-other",
        edit(&|m| drop(m.insert("aud".into(), json!("https://other.example")))),
    );
    out.put(
        "introspection",
        "iss-other",
        edit(&|m| drop(m.insert("iss".into(), json!("https://evil.example")))),
    );
    out.put(
        "introspection",
        "google-string-exp",
        edit(&|m| drop(m.insert("exp".into(), json!(" 4102444800 ")))),
    );
    out.put(
        "introspection",
        "expired",
        edit(&|m| drop(m.insert("exp".into(), json!(ISSUED)))),
    );
    out.put(
        "introspection",
        "nbf-future",
        edit(&|m| drop(m.insert("nbf".into(), json!(FAR_FUTURE - 1)))),
    );
    out.put(
        "introspection",
        "active-string",
        edit(&|m| drop(m.insert("active".into(), json!("true")))),
    );
    out.put(
        "introspection",
        "scope-array",
        edit(&|m| drop(m.insert("scope".into(), json!(["a", "b"])))),
    );
    out.put("introspection", "not-object", "[true]");
    out.put("introspection", "null", "null");
    out.put("introspection", "not-json", "<html>502 Bad Gateway</html>");
}

fn tool_name(out: &mut Out) {
    let revisions = [
        "2024-11-05",
        "2025-03-26",
        "2025-06-18",
        "2025-11-25",
        "2026-07-28",
    ];
    let methods: Vec<(&str, Value)> = vec![
        (
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "seed", "version": "1"}}),
        ),
        ("ping", json!({})),
        ("tools/list", json!({"cursor": "abc"})),
        (
            "tools/call",
            json!({"name": "void_invoice", "arguments": {"invoice_id": "inv_1", "reason": "duplicate"}}),
        ),
        (
            "tools/call",
            json!({"name": "list_invoices", "arguments": {}, "_meta": {"progressToken": 1}}),
        ),
        ("resources/list", json!({})),
        ("resources/read", json!({"uri": "file:///x"})),
        ("prompts/list", json!({})),
        ("prompts/get", json!({"name": "p", "arguments": {}})),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": "v"}}),
        ),
        ("logging/setLevel", json!({"level": "info"})),
    ];
    for rev in revisions {
        for (i, (method, params)) in methods.iter().enumerate() {
            let body = json!({"jsonrpc": "2.0", "id": i, "method": method, "params": params});
            let body = serde_json::to_vec(&body).expect("JSON");
            let name = format!("{rev}-{method}-{i}");
            out.put("tool_name", &name, &body);
            // The SEP-2243 headers as the first lines.
            let tool = params.get("name").and_then(Value::as_str).unwrap_or("");
            let mut with_headers = format!("{rev}\n{method}\n{tool}\n").into_bytes();
            with_headers.extend_from_slice(&body);
            out.put("tool_name", &format!("headers-{name}"), with_headers);
        }
    }
    let notifications: &[(&str, &[u8])] = &[
        ("initialized", br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        ("cancelled", br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#),
        ("response", br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
        ("error", br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#),
        ("batch", br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]"#),
        // policy/tool_name.rs's table.
        ("reordered", br#"{"params":{"arguments":{},"name":"a"},"method":"tools/call","id":1,"jsonrpc":"2.0"}"#),
        ("escapes", br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"void\u005finvoice"}}"#),
        ("escaped-keys", br#"{"jsonrpc":"2.0","id":1,"m\u0065thod":"tools/call","params":{"n\u0061me":"x"}}"#),
        ("unicode-name", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"caf\u00e9 \"q\""}}"#),
        ("dup-method", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list"}"#),
        ("dup-name", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"cheap","name":"costly"}}"#),
        ("dup-params", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#),
        ("name-number", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#),
        ("params-array", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}"#),
        ("no-params", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#),
        ("trailing", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}} trailing"#),
        ("deep-args", br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":[[[[[[[[{"b":null}]]]]]]]]}}}"#),
        ("garbage", b"garbage"),
        ("bom", b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}"),
        ("headers-base64", b"2026-07-28\ntools/call\n=?base64?Y2Fmw6k=?=\n{}"),
        ("headers-bad-base64", b"2026-07-28\ntools/call\n=?base64?/w==?=\n"),
        ("headers-case", b"2026-07-28\nTools/Call\nt\n"),
        ("headers-future", b"2027-01-01\ntools/list\n\n"),
    ];
    for (name, body) in notifications {
        out.put("tool_name", name, body);
    }
}

fn config(out: &mut Out, root: &Path) {
    let example =
        std::fs::read_to_string(root.join("gatehouse.example.toml")).expect("example config");
    out.put("config", "gatehouse-example", &example);
    out.put("config", "empty", "");
    let mut demo = gatehouse_cli::config::Config::default();
    demo.auth
        .issuers
        .push(gatehouse_cli::config::IssuerConfig::new(
            "https://auth.example.com",
        ));
    let (upstreams, notes) = gatehouse_cli::demo::ledger_settings(
        "https://auth.example.com/token",
        "https://ledger.example.com/api",
        Path::new("/nonexistent/secret"),
    );
    demo.upstreams = upstreams;
    demo.credit_notes = Some(notes);
    out.put(
        "config",
        "demo-ledger",
        toml::to_string(&demo).expect("TOML"),
    );
    out.put(
        "config",
        "introspection",
        "[server]\nlisten = \"0.0.0.0:8443\"\nresource = \"https://mcp.example.com/mcp\"\n\
         trusted_proxies = [\"10.0.0.0/8\"]\nallowed_origins = [\"https://app.example.com\"]\ncors = true\n\
         [[auth.introspection]]\nissuer = \"https://auth.example.com\"\nclient_id = \"billing\"\n\
         client_secret_env = \"INTROSPECTION_SECRET\"\nauth_method = \"post\"\n\
         [rate_limits]\n[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
    );
    out.put(
        "config",
        "unknown-key",
        "[server]\nlisen = \"127.0.0.1:9000\"\n",
    );
    out.put(
        "config",
        "mistyped",
        "[server]\nlisten = \"not an address\"\n[[auth.issuers]]\nissuer = 7\n",
    );
}
