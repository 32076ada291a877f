//! Minting many tokens from the development issuer.

use std::io::Write as _;
use std::path::Path;

use gatehouse_dev_issuer::DevIssuer;

/// Mints `n` tokens for `client` (all its scopes) and `resource`, on `threads` threads.
/// Every token differs (random `jti`), so each one costs the server a full verification.
pub fn mint_many(
    issuer: &DevIssuer,
    client: &str,
    resource: &str,
    n: usize,
    threads: usize,
) -> anyhow::Result<Vec<String>> {
    let threads = threads.max(1);
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let count = per.min(n.saturating_sub(i * per));
                s.spawn(move || {
                    (0..count)
                        .map(|_| {
                            issuer
                                .mint(client, &[], resource)
                                .map_err(|e| anyhow::anyhow!("minting: {e:?}"))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("minting thread panicked"))??,
            );
        }
        Ok(out)
    })
}

/// `token` with its signature changed (first signature character replaced): same header and
/// claims, so the server does all the work up to the signature check and then refuses it.
pub fn tamper_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').expect("a compact JWS");
    let mut sig = sig.as_bytes().to_vec();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    format!("{input}.{}", String::from_utf8(sig).expect("ascii"))
}

/// Writes one token per line.
pub fn write_lines(path: &Path, tokens: &[String]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for t in tokens {
        f.write_all(t.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_dev_issuer::{DevClient, DevIssuerConfig};

    #[test]
    fn minted_tokens_are_distinct_and_tampering_changes_only_the_signature() {
        let issuer = DevIssuer::new(DevIssuerConfig {
            issuer: Some("http://127.0.0.1:9".into()),
            clients: vec![DevClient::new("c", "s", ["invoices:read"])],
            ..DevIssuerConfig::default()
        })
        .unwrap();
        let tokens = mint_many(&issuer, "c", "http://127.0.0.1:1/mcp", 5, 2).unwrap();
        assert_eq!(tokens.len(), 5);
        let distinct: std::collections::HashSet<_> = tokens.iter().collect();
        assert_eq!(distinct.len(), 5);
        let bad = tamper_signature(&tokens[0]);
        assert_ne!(bad, tokens[0]);
        assert_eq!(
            bad.rsplit_once('.').unwrap().0,
            tokens[0].rsplit_once('.').unwrap().0
        );
    }
}
