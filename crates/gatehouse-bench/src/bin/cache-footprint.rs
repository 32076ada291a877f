//! `cache-footprint [--tokens N]`: the memory a full verified-token cache holds, per entry and
//! in all, for N distinct tokens (default 1,000,000) — once with every claim kept on the cached
//! caller (what Gatehouse did before issue 18) and once as it does now (the caller's fields plus
//! `act`, `cnf` and configured claims). Each token's caller has the claims of a typical
//! enterprise access token (Entra-like: 18 claims). Measured as the growth of the process's
//! resident memory (`VmRSS`) while the cache fills, in a fresh process per mode (`--mode`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse::verify::cache::{Authenticator, CacheConfig};
use gatehouse::verify::{BoxFuture, TokenVerifier, VerifyError};
use gatehouse::{AccessToken, Caller, Principal, ScopeSet, TokenKind};
use gatehouse_bench::args;
use serde_json::{Map, Value, json};

/// The same allocator as the `gatehouse` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers every token with a caller whose claims look like an Entra v2 user token's (none in
/// `bare` mode, which measures what an entry costs without claims).
struct Typical {
    /// Shared, as a real verifier shares its issuer.
    issuer: Arc<str>,
    with_claims: bool,
}

fn claims(token: &str) -> Map<String, Value> {
    let v = json!({
        "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
        "iss": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0",
        "iat": 1_764_000_000, "nbf": 1_764_000_000, "exp": 1_764_004_500,
        "aio": "AXQAi/8IAAAAqxsuB+R4D2rFQqOETO4YdXbLD9kZ8xfXadeAM0Q2NkNT5izfg3uwbWSXhuSSj6UT5hy2D6WqAp",
        "azp": "aaaaaaaa-0000-1111-2222-333333333333", "azpacr": "0",
        "name": "Ada Lovelace", "oid": "0a0b0c0d-1111-2222-3333-444444444444",
        "preferred_username": "ada@contoso.example", "rh": "I",
        "scp": "invoices.read invoices.write",
        "sub": format!("HKZpfaHyWadeOouYlitjrI-{token}"),
        "tid": "11111111-2222-3333-4444-555555555555",
        "uti": format!("fqiBqXLPj0eQa82S-{token}"), "ver": "2.0",
        "groups": ["0a0b0c0d-aaaa-2222-3333-444444444444", "0a0b0c0d-bbbb-2222-3333-444444444444"],
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl TokenVerifier for Typical {
    fn verify<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Caller, VerifyError>> {
        let token = token.expose().to_owned();
        let issuer = self.issuer.clone();
        let with_claims = self.with_claims;
        Box::pin(async move {
            Ok(Caller::new(Principal {
                issuer,
                subject: Some(format!("HKZpfaHyWadeOouYlitjrI-{token}")),
                client_id: Some("aaaaaaaa-0000-1111-2222-333333333333".into()),
                scopes: ScopeSet::from_space_separated("invoices.read invoices.write"),
                audiences: vec!["6e74172b-be56-4843-9ff4-e66a39bb12e3".into()],
                tenant: Some("11111111-2222-3333-4444-555555555555".into()),
                expires_at: SystemTime::now() + Duration::from_secs(3600),
                kind: TokenKind::Jwt,
                claims: if with_claims {
                    claims(&token)
                } else {
                    Map::new()
                },
            }))
        })
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() -> anyhow::Result<()> {
    let n: u64 = args::parsed("tokens", 1_000_000)?;
    let mode = args::get("mode").unwrap_or_else(|| "compact".into());
    let keep_claims = match mode.as_str() {
        // Every claim kept, as before: name them all.
        "all" => claims("x").keys().cloned().collect(),
        "compact" | "bare" => Vec::new(),
        other => anyhow::bail!("--mode all|compact|bare, not {other}"),
    };
    // One cache of `n` entries with the mode's claims, built the same way for either run.
    let auth = Authenticator::new(
        Arc::new(Typical {
            issuer: "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
                .into(),
            with_claims: mode != "bare",
        }),
        CacheConfig {
            max_entries: n,
            max_ttl: Duration::from_secs(3600),
            keep_claims,
            ..CacheConfig::default()
        },
    );
    let churn: u64 = args::parsed("churn", 0)?;
    if churn > 0 {
        return churn_run(auth, churn);
    }
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async move {
        let before = rss_bytes();
        for i in 0..n {
            let token = AccessToken::new(format!("token-{i:012}"));
            auth.authenticate(&token).await?;
        }
        let entries = auth.entry_count();
        let grown = rss_bytes().saturating_sub(before);
        println!(
            "mode={mode} tokens={n} entries={entries} rss_growth_mb={:.1} bytes_per_entry={}",
            grown as f64 / 1e6,
            grown / entries.max(1)
        );
        Ok::<_, anyhow::Error>(())
    })
}

/// `--churn M`: a full cache of `--tokens N` entries (claims as `--mode` says) that keeps taking new tokens — M of them,
/// from 8 tasks on two worker threads, as a server under a new-token-per-request load — with
/// resident memory printed every M/30 tokens. A bounded cache must plateau.
fn churn_run(auth: Authenticator, churn: u64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let auth = Arc::new(auth);
        let tasks = 8u64;
        let step = (churn / 30).max(1);
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (auth, next) = (auth.clone(), next.clone());
            handles.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= churn {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let token = AccessToken::new(format!("token-{i:012}"));
                    auth.authenticate(&token).await?;
                    if i % step == 0 {
                        println!(
                            "tokens={i} entries={} rss_mb={:.1}",
                            auth.entry_count(),
                            rss_bytes() as f64 / 1e6
                        );
                    }
                }
            }));
        }
        for h in handles {
            h.await??;
        }
        Ok(())
    })
}
