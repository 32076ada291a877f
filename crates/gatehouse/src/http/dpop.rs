//! DPoP at the edge (RFC 9449 §7): after the token is verified (or found in the verified-token
//! cache), how it was presented decides whether it may be used — so the cache never lets a bound
//! token skip its proof.
//!
//! | scheme | token bound (`cnf.jkt`) | issuer's `dpop` | outcome |
//! |---|---|---|---|
//! | Bearer | yes | any | `401 invalid_token` (§7.2: a bound token needs its proof) |
//! | Bearer | no | `required` | `401 invalid_token` |
//! | Bearer | no | `off`, `allowed` | accepted |
//! | DPoP | no, or issuer `off` | — | `401 invalid_token` |
//! | DPoP | yes | `allowed`, `required` | the proof is checked ([`DpopVerifier`]): `401 invalid_dpop_proof` or accepted |

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, Method};

use crate::caller::{AccessToken, Caller};
use crate::http::bearer::TokenScheme;
use crate::http::challenge::Rejection;
use crate::verify::InvalidReason;
use crate::verify::dpop::{DpopError, DpopMode, DpopVerifier, ProofTarget};

const DPOP: HeaderName = HeaderName::from_static("dpop");

/// What the edge needs for DPoP: the proof verifier, each issuer's mode, and the URI proofs
/// must name (the canonical resource URL: the one clients address).
#[derive(Debug)]
pub(crate) struct DpopEdge {
    pub(crate) verifier: DpopVerifier,
    pub(crate) modes: HashMap<String, DpopMode>,
    pub(crate) resource: String,
}

impl DpopEdge {
    /// Whether `caller`'s token, presented with `scheme`, may be used for this request.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        method: &Method,
        token: &AccessToken,
        scheme: TokenScheme,
        caller: &Caller,
    ) -> Result<(), Rejection> {
        let mode = self
            .modes
            .get(caller.issuer.as_ref())
            .copied()
            .unwrap_or_default();
        let bound = caller.dpop_jkt();
        match scheme {
            TokenScheme::Bearer => match (bound, mode) {
                (Some(_), _) => Err(Rejection::InvalidToken(InvalidReason::BoundTokenAsBearer)),
                (None, DpopMode::Required) => {
                    Err(Rejection::InvalidToken(InvalidReason::DpopRequired))
                }
                (None, DpopMode::Off | DpopMode::Allowed) => Ok(()),
            },
            TokenScheme::Dpop => {
                let (Some(jkt), DpopMode::Allowed | DpopMode::Required) = (bound, mode) else {
                    return Err(Rejection::InvalidToken(InvalidReason::NotDpopBound));
                };
                let mut proofs = headers.get_all(DPOP).iter();
                let (Some(proof), None) = (proofs.next(), proofs.next()) else {
                    return Err(Rejection::InvalidDpopProof(DpopError::Missing));
                };
                let proof = proof
                    .to_str()
                    .map_err(|_| Rejection::InvalidDpopProof(DpopError::Malformed))?;
                let target = ProofTarget {
                    method: method.as_str(),
                    uri: &self.resource,
                    access_token: Some(token.expose()),
                    bound_jkt: Some(jkt),
                };
                self.verifier
                    .verify(proof, &target)
                    .map(drop)
                    .map_err(|e| match e {
                        // §9: the client retries with this one.
                        DpopError::UseNonce => {
                            Rejection::UseDpopNonce(self.verifier.issue_nonce().unwrap_or_default())
                        }
                        e => Rejection::InvalidDpopProof(e),
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use http::HeaderValue;

    use super::*;
    use crate::caller::{Principal, ScopeSet, TokenKind};
    use crate::verify::dpop::{DpopConfig, DpopVerifier};

    fn bound(issuer: &str) -> Caller {
        let mut claims = serde_json::Map::new();
        claims.insert("cnf".into(), serde_json::json!({"jkt": "thumbprint"}));
        Caller::new(Principal {
            issuer: issuer.into(),
            subject: Some("u".into()),
            client_id: None,
            scopes: ScopeSet::new(),
            audiences: vec![],
            tenant: None,
            expires_at: SystemTime::now() + Duration::from_secs(60),
            kind: TokenKind::Jwt,
            claims,
        })
    }

    fn edge() -> DpopEdge {
        DpopEdge {
            verifier: DpopVerifier::new(DpopConfig::default()),
            modes: [("https://on.example".to_owned(), DpopMode::Allowed)].into(),
            resource: "https://mcp.example.com/mcp".into(),
        }
    }

    // Refusals the end-to-end tests (tests/dpop.rs) cannot reach through an HTTP client.
    #[test]
    fn unreadable_proofs_and_issuers_without_dpop_are_refused() {
        let token = AccessToken::new("t");
        let mut headers = HeaderMap::new();
        headers.insert(DPOP, HeaderValue::from_bytes(b"proof\xff").unwrap());
        assert_eq!(
            edge().check(
                &headers,
                &Method::POST,
                &token,
                TokenScheme::Dpop,
                &bound("https://on.example")
            ),
            Err(Rejection::InvalidDpopProof(DpopError::Malformed))
        );
        // A bound token of an issuer with DPoP off, where another issuer has it on.
        assert_eq!(
            edge().check(
                &headers,
                &Method::POST,
                &token,
                TokenScheme::Dpop,
                &bound("https://off.example")
            ),
            Err(Rejection::InvalidToken(InvalidReason::NotDpopBound))
        );
    }
}
