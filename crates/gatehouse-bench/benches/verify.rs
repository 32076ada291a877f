//! Micro-benchmarks of the per-request work of Gatehouse's hot path.
//!
//! - cold JWT verification (RS256, ES256, EdDSA) through the library's `JwtVerifier`, keys
//!   pre-loaded from a local JWKS (gatehouse-testkit's `TestAuthServer` on 127.0.0.1:0);
//! - verified-token cache hit (`Authenticator`), for a JWT and for an introspected token;
//! - challenge rendering (`401 invalid_token`, `401` without credentials);
//! - tool-name extraction from a typical `tools/call` body (`policy::tool_name::from_body`);
//! - the whole edge (`Gatehouse::router`) admitting a cached token in front of a trivial service.
//!
//! `cargo bench -p gatehouse-bench`. Under `cargo test --all-targets` criterion runs each
//! benchmark once, so the suite stays fast.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::http::{Challenges, Gatehouse, Rejection};
use gatehouse::policy::tool_name;
use gatehouse::verify::InvalidReason;
use gatehouse::verify::cache::{Authenticator, CacheConfig};
use gatehouse::verify::chain::{ChainConfig, VerifierChain};
use gatehouse::verify::introspection::{ClientSecret, IntrospectionConfig};
use gatehouse::verify::jwt::JwtIssuerConfig;
use gatehouse::{AccessToken, ResourceUrl, ScopeSet, TokenVerifier};
use gatehouse_testkit::{Alg, TestAuthServer};
use http::Request;
use tower::ServiceExt as _;

const AUD: &str = "http://127.0.0.1:8080/mcp";
const TOOLS_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"lookup_invoice","arguments":{"invoiceId":"INV-2041"},"_meta":{"progressToken":"p-17"}}}"#;

struct Fixture {
    rt: tokio::runtime::Runtime,
    _idp: TestAuthServer,
    chain: Arc<VerifierChain>,
    issuer: String,
    tokens: Vec<(Alg, AccessToken)>,
    opaque: AccessToken,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (idp, chain) = rt.block_on(async {
        let idp = TestAuthServer::builder()
            .audience(AUD)
            .algs(&[Alg::RS256, Alg::ES256, Alg::EdDSA])
            .start()
            .await;
        let mut jwt = JwtIssuerConfig::new(idp.issuer(), AUD);
        jwt.jwks_uri = Some(idp.jwks_uri().parse().expect("url"));
        let (id, secret) = idp.introspection_client();
        let mut intro = IntrospectionConfig::new(idp.issuer(), id, ClientSecret::new(secret), AUD);
        intro.endpoint = Some(idp.introspection_endpoint().parse().expect("url"));
        let chain = VerifierChain::start(
            ChainConfig {
                jwt_issuers: vec![jwt],
                introspection: vec![intro],
                ..ChainConfig::default()
            },
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect("chain");
        assert!(chain.ready(), "keys loaded before measuring");
        (idp, chain)
    });
    let tokens = [Alg::RS256, Alg::ES256, Alg::EdDSA]
        .into_iter()
        .map(|alg| {
            let t = idp.token().alg(alg).expires_in(3600).sign();
            (alg, AccessToken::new(t))
        })
        .collect();
    let opaque = "opaque-bench-token-0123456789abcdef";
    idp.set_introspection(opaque, idp.active_introspection(3600));
    Fixture {
        issuer: idp.issuer().to_owned(),
        rt,
        _idp: idp,
        chain: Arc::new(chain),
        tokens,
        opaque: AccessToken::new(opaque),
    }
}

fn verification(c: &mut Criterion) {
    let f = fixture();
    let verifier = f.chain.jwt_verifier(&f.issuer).expect("verifier").clone();
    let mut group = c.benchmark_group("cold_jwt");
    for (alg, token) in &f.tokens {
        // Fails loudly if the fixture is wrong rather than timing a refusal.
        f.rt.block_on(verifier.verify(token)).expect("valid token");
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                f.rt.block_on(verifier.verify(black_box(token)))
                    .expect("valid")
            })
        });
    }
    group.finish();

    let auth = Authenticator::new(f.chain.clone(), CacheConfig::default());
    let (_, es256) = &f.tokens[1];
    f.rt.block_on(auth.authenticate(es256)).expect("valid");
    f.rt.block_on(auth.authenticate(&f.opaque)).expect("active");
    let misses = auth.stats().misses;
    let mut group = c.benchmark_group("cache_hit");
    group.bench_function("jwt", |b| {
        b.iter(|| {
            f.rt.block_on(auth.authenticate(black_box(es256)))
                .expect("hit")
        })
    });
    group.bench_function("introspection", |b| {
        b.iter(|| {
            f.rt.block_on(auth.authenticate(black_box(&f.opaque)))
                .expect("hit")
        })
    });
    group.finish();
    assert_eq!(auth.stats().misses, misses, "every measured call was a hit");

    let resource = ResourceUrl::parse(AUD).expect("resource");
    let scopes = ScopeSet::parse(["invoices:read"]).expect("scopes");
    let challenges =
        Challenges::new(&resource, &scopes, Duration::from_secs(5)).expect("challenges");
    let mut group = c.benchmark_group("challenge");
    group.bench_function("invalid_token", |b| {
        b.iter(|| {
            challenges.render(black_box(&Rejection::InvalidToken(
                InvalidReason::BadSignature,
            )))
        })
    });
    group.bench_function("missing_credentials", |b| {
        b.iter(|| challenges.render(black_box(&Rejection::MissingCredentials)))
    });
    group.finish();

    c.bench_function("tool_name/from_body", |b| {
        b.iter(|| tool_name::from_body(black_box(TOOLS_CALL)))
    });

    // The whole edge with a cached token, in front of a service that answers at once: what
    // Gatehouse adds to every authenticated request.
    let gatehouse = Gatehouse::builder(resource)
        .authorization_servers([f.issuer.clone()])
        .verifier(f.chain.clone())
        .build()
        .expect("gatehouse");
    let inner = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(http::Response::new(Body::from("{}")))
    });
    let router = gatehouse.router(inner);
    let bearer = format!("Bearer {}", es256.expose());
    let request = || {
        Request::post("/mcp")
            .header("host", "127.0.0.1:8080")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", bearer.as_str())
            .body(Body::from(TOOLS_CALL))
            .expect("request")
    };
    let status =
        f.rt.block_on(router.clone().oneshot(request()))
            .expect("infallible")
            .status();
    assert_eq!(status, 200);
    c.bench_function("edge/admit_cached_tools_call", |b| {
        b.iter(|| {
            f.rt.block_on(router.clone().oneshot(request()))
                .expect("infallible")
        })
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
