//! Identity-provider presets (`preset = "…"` on an issuer): what real providers' access tokens
//! look like — header `typ`, the claims that carry scopes, where the keys are, the issuer's
//! form — set once instead of hand-tuned options. A preset only relaxes what that provider is
//! known to need, refuses what must never be accepted from it, and checks that the issuer has
//! the provider's form, so a mistyped issuer fails at start rather than at the first token.
//!
//! | preset | issuer form | relaxed | also |
//! |---|---|---|---|
//! | `entra` | `https://login.microsoftonline.com/{tenant-id}/v2.0` or `https://sts.windows.net/{tenant-id}/` (one tenant) | `typ: JWT` | scopes from `scp` and, for app-only tokens, `roles`; RS256; keys from the tenant's v2 or v1 key set |
//! | `auth0` | `https://{domain}/` (trailing slash, as in `iss`) | `typ: JWT` | RBAC `permissions` as scopes; keys at `/.well-known/jwks.json` |
//! | `keycloak` | `https://{host}/realms/{realm}` | `typ: JWT` | keys at `/protocol/openid-connect/certs` |
//! | `okta` | `https://{org}/oauth2/{server-id}` (a custom authorization server) | no `typ` | `scp` (an array) as scopes; RS256; keys at `/v1/keys`; the org authorization server (`https://{org}`) is refused: its tokens are for Okta only |
//! | `cognito` | `https://cognito-idp.{region}.amazonaws.com/{pool-id}` | no `typ`; no `aud`: `client_id` checked against `audiences` (`dangerous_audience_from_client_id`, warned) | `token_use` must be `access`; keys at `/.well-known/jwks.json` |
//! | `zitadel` | `https://{instance}` | `typ: JWT` | keys at `/oauth/v2/keys` |
//!
//! Entra multi-tenant apps: the issuer template `https://login.microsoftonline.com/{tenantid}/v2.0`
//! with `tenants = [...]` becomes one issuer per listed tenant (settings), each checked as
//! above; any tenant is never accepted by default. Not covered: Entra v1 and v2 tokens under one
//! entry (configure two entries), role claims nested in objects (Keycloak `realm_access.roles`,
//! ZITADEL's project roles).

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use crate::verify::jwt::JwtIssuerConfig;

/// A known identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdpPreset {
    /// Microsoft Entra ID, one tenant.
    Entra,
    /// Auth0.
    Auth0,
    /// Keycloak (25, 26).
    Keycloak,
    /// Okta, a custom authorization server.
    Okta,
    /// AWS Cognito user pools.
    Cognito,
    /// ZITADEL.
    Zitadel,
}

impl IdpPreset {
    /// Applies the preset to `config` (its issuer already set): relaxations are added to what
    /// is configured, an explicit `jwks_uri` or algorithm list is kept. The error says what is
    /// wrong with the issuer.
    pub fn apply(self, config: &mut JwtIssuerConfig) -> Result<(), String> {
        let issuer = url::Url::parse(&config.issuer)
            .map_err(|e| format!("{self:?} issuer is not a URL: {e}"))?;
        if issuer.scheme() != "https" {
            return Err(format!("{self:?} issuers are https URLs"));
        }
        let host = issuer.host_str().unwrap_or_default().to_owned();
        let segments: Vec<&str> = issuer
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let base = config.issuer.trim_end_matches('/').to_owned();
        let keys_at = |path: &str| format!("{base}{path}");
        let jwks = match self {
            Self::Entra => {
                let (tenant, v2) = match (host.as_str(), segments.as_slice()) {
                    (h, [tenant, "v2.0"]) if h.starts_with("login.microsoftonline.") => {
                        (*tenant, true)
                    }
                    ("sts.windows.net", [tenant]) if config.issuer.ends_with('/') => {
                        (*tenant, false)
                    }
                    _ => {
                        return Err("an Entra issuer is https://login.microsoftonline.com/\
                                    {tenant-id}/v2.0 or https://sts.windows.net/{tenant-id}/"
                            .into());
                    }
                };
                if !is_guid(tenant) {
                    return Err(format!(
                        "Entra tenant {tenant:?} is not a tenant ID: for a multi-tenant app use \
                         the issuer template https://login.microsoftonline.com/{{tenantid}}/v2.0 \
                         with tenants = [the tenant IDs allowed]"
                    ));
                }
                config.typ.accept_jwt = true;
                // The token's tenant must be the issuer's (defence in depth for multi-tenant
                // apps, whose tenants share one key set).
                config
                    .required_claims
                    .push(("tid".into(), tenant.to_string()));
                // App-only tokens carry their permissions in `roles`, not `scp`.
                push_claim(config, "roles");
                // Entra's keys carry no `alg`; its tokens are RS256.
                default_algorithms(config, &[Algorithm::RS256]);
                if v2 {
                    format!("https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys")
                } else {
                    format!("https://login.microsoftonline.com/{tenant}/discovery/keys")
                }
            }
            Self::Auth0 => {
                if !config.issuer.ends_with('/') || !segments.is_empty() {
                    return Err(
                        "an Auth0 issuer is https://{domain}/ with the trailing slash its \
                         tokens' iss has"
                            .into(),
                    );
                }
                config.typ.accept_jwt = true;
                push_claim(config, "permissions");
                keys_at("/.well-known/jwks.json")
            }
            Self::Keycloak => {
                if !matches!(segments.as_slice(), [.., "realms", _]) {
                    return Err("a Keycloak issuer is https://{host}/realms/{realm}".into());
                }
                config.typ.accept_jwt = true;
                keys_at("/protocol/openid-connect/certs")
            }
            Self::Okta => {
                if !matches!(segments.as_slice(), ["oauth2", _]) {
                    return Err(
                        "an Okta issuer is a custom authorization server, https://{org}/oauth2/\
                         {server-id} (…/oauth2/default); the org authorization server's tokens \
                         are for Okta's own APIs and must not be accepted"
                            .into(),
                    );
                }
                config.typ.accept_missing = true;
                config.typ.accept_jwt = true;
                default_algorithms(config, &[Algorithm::RS256]);
                keys_at("/v1/keys")
            }
            Self::Cognito => {
                let ok = host.starts_with("cognito-idp.")
                    && host.ends_with(".amazonaws.com")
                    && matches!(segments.as_slice(), [pool] if pool.contains('_'));
                if !ok {
                    return Err(
                        "a Cognito issuer is https://cognito-idp.{region}.amazonaws.com/\
                                {user-pool-id}"
                            .into(),
                    );
                }
                config.typ.accept_missing = true;
                // Cognito access tokens have no `aud`; `audiences` then lists the app clients.
                config.dangerous_audience_from_client_id = true;
                config
                    .required_claims
                    .push(("token_use".into(), "access".into()));
                keys_at("/.well-known/jwks.json")
            }
            Self::Zitadel => {
                if !segments.is_empty() {
                    return Err("a ZITADEL issuer is https://{instance-domain}".into());
                }
                config.typ.accept_jwt = true;
                keys_at("/oauth/v2/keys")
            }
        };
        if config.jwks_uri.is_none() {
            config.jwks_uri =
                Some(url::Url::parse(&jwks).map_err(|e| format!("keys URL {jwks}: {e}"))?);
        }
        Ok(())
    }
}

fn push_claim(config: &mut JwtIssuerConfig, claim: &str) {
    if !config.extra_scope_claims.iter().any(|c| c == claim) {
        config.extra_scope_claims.push(claim.to_owned());
    }
}

/// The provider's algorithms unless the configuration names its own.
fn default_algorithms(config: &mut JwtIssuerConfig, algs: &[Algorithm]) {
    if config.algorithms == crate::verify::jwt::DEFAULT_ALGORITHMS {
        config.algorithms = algs.to_vec();
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use gatehouse_testkit::{Alg, TestAuthServer, TestKey};
    use serde_json::json;

    use super::*;
    use crate::caller::{AccessToken, Caller};
    use crate::verify::jwt::JwtVerifier;
    use crate::verify::{InvalidReason, TokenVerifier, VerifyError};

    const AUD: &str = "https://mcp.example.com/mcp";
    const TENANT: &str = "11111111-2222-3333-4444-555555555555";

    /// A verifier for `issuer` with `preset`, its keys served by the test server `ts` (which
    /// stands in for the provider: tokens are forged with the provider's `iss` and shapes).
    async fn verifier(
        ts: &TestAuthServer,
        issuer: &str,
        preset: IdpPreset,
        edit: impl FnOnce(&mut JwtIssuerConfig),
    ) -> JwtVerifier {
        let mut config = JwtIssuerConfig::new(issuer, AUD);
        preset.apply(&mut config).unwrap();
        // The provider's own key URL was set; the test's keys are here.
        config.jwks_uri = Some(ts.jwks_uri().parse().unwrap());
        edit(&mut config);
        JwtVerifier::discover(config).await.unwrap()
    }

    async fn server() -> TestAuthServer {
        let ts = TestAuthServer::builder()
            .audience(AUD)
            .keys(vec![TestKey::generate(Alg::RS256).with_kid("k1")])
            .start()
            .await;
        // Like Entra's and oidc-provider's RSA keys.
        ts.set_jwks_omit_alg(true);
        ts
    }

    async fn check(v: &JwtVerifier, token: String) -> Result<Caller, VerifyError> {
        v.verify(&AccessToken::new(token)).await
    }

    fn scopes(c: &Caller) -> String {
        c.scopes.to_space_separated()
    }

    #[tokio::test]
    async fn entra_tokens_pass_with_scp_or_roles_and_graph_tokens_do_not() {
        let ts = server().await;
        let iss = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
        let v = verifier(&ts, &iss, IdpPreset::Entra, |_| {}).await;
        let entra = || {
            ts.token()
                .iss(&iss)
                .header_typ("JWT")
                .aud(AUD)
                .without("scope")
                .claim("tid", TENANT)
                .claim("ver", "2.0")
        };
        // Delegated: `scp` string. App-only: `roles`, no `scp`.
        let user = check(
            &v,
            entra().claim("scp", "invoices.read invoices.write").sign(),
        )
        .await
        .unwrap();
        assert_eq!(scopes(&user), "invoices.read invoices.write");
        let app = check(
            &v,
            entra().claim("roles", json!(["Invoices.Read.All"])).sign(),
        )
        .await
        .unwrap();
        assert_eq!(scopes(&app), "Invoices.Read.All");
        // A Graph-style token (a `nonce` header only Microsoft can verify) is refused.
        assert_eq!(
            check(&v, entra().header("nonce", "AQABAAAAAAB").sign())
                .await
                .unwrap_err(),
            VerifyError::Invalid(InvalidReason::ForbiddenHeader)
        );
        // A token of another tenant under this tenant's issuer (shared keys) is refused.
        assert_eq!(
            check(
                &v,
                entra()
                    .claim("tid", "66666666-7777-8888-9999-000000000000")
                    .claim("scp", "invoices.read")
                    .sign()
            )
            .await
            .unwrap_err(),
            VerifyError::Invalid(InvalidReason::MissingClaim)
        );
        // Without the preset the same token is refused (typ JWT, RFC 9068 strictness).
        let mut plain = JwtIssuerConfig::new(iss.clone(), AUD);
        plain.jwks_uri = Some(ts.jwks_uri().parse().unwrap());
        let plain = JwtVerifier::discover(plain).await.unwrap();
        assert_eq!(
            check(&plain, entra().claim("scp", "invoices.read").sign())
                .await
                .unwrap_err(),
            VerifyError::Invalid(InvalidReason::TypeNotAllowed)
        );
        // RS256 only.
        let mut config = JwtIssuerConfig::new(iss.clone(), AUD);
        IdpPreset::Entra.apply(&mut config).unwrap();
        assert_eq!(config.algorithms, [Algorithm::RS256]);
        assert_eq!(
            config.jwks_uri.unwrap().as_str(),
            format!("https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys")
        );
    }

    #[tokio::test]
    async fn auth0_permissions_are_scopes_and_its_aud_array_passes() {
        let ts = server().await;
        let iss = "https://acme-dev.us.auth0.com/";
        let v = verifier(&ts, iss, IdpPreset::Auth0, |_| {}).await;
        let c = check(
            &v,
            ts.token()
                .iss(iss)
                .header_typ("JWT")
                .aud(json!([AUD, "https://acme-dev.us.auth0.com/userinfo"]))
                .scope("openid invoices:read")
                .claim("permissions", json!(["invoices:void"]))
                .claim("org_id", "org_9ybwNkbBgXGCQYnN")
                .sign(),
        )
        .await
        .unwrap();
        assert_eq!(scopes(&c), "invoices:read invoices:void openid");
    }

    #[tokio::test]
    async fn keycloak_and_zitadel_tokens_typed_jwt_pass() {
        let ts = server().await;
        for (iss, preset) in [
            ("https://sso.example.com/realms/acme", IdpPreset::Keycloak),
            ("https://acme.zitadel.cloud", IdpPreset::Zitadel),
        ] {
            let v = verifier(&ts, iss, preset, |_| {}).await;
            let c = check(
                &v,
                ts.token()
                    .iss(iss)
                    .header_typ("JWT")
                    .aud(json!([AUD, "account"]))
                    .scope("invoices:read")
                    .sign(),
            )
            .await
            .unwrap();
            assert_eq!(scopes(&c), "invoices:read", "{preset:?}");
        }
    }

    #[tokio::test]
    async fn okta_custom_server_tokens_pass_without_typ_with_scp_arrays() {
        let ts = server().await;
        let iss = "https://acme.okta.com/oauth2/default";
        let v = verifier(&ts, iss, IdpPreset::Okta, |_| {}).await;
        let c = check(
            &v,
            ts.token()
                .iss(iss)
                .no_typ()
                .aud(AUD)
                .without("scope")
                .claim("scp", json!(["invoices:read", "offline_access"]))
                .claim("cid", "0oa1b2c3")
                .sign(),
        )
        .await
        .unwrap();
        assert_eq!(scopes(&c), "invoices:read offline_access");
        // The org server's own token type stays refused.
        assert_eq!(
            check(
                &v,
                ts.token()
                    .iss(iss)
                    .header_typ("application/okta-internal-at+jwt")
                    .aud(AUD)
                    .sign()
            )
            .await
            .unwrap_err(),
            VerifyError::Invalid(InvalidReason::TypeNotAllowed)
        );
    }

    #[tokio::test]
    async fn cognito_access_tokens_pass_by_client_id_and_id_tokens_do_not() {
        let ts = server().await;
        let iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123";
        // `audiences` lists the app clients allowed.
        let v = verifier(&ts, iss, IdpPreset::Cognito, |c| {
            c.audiences = vec!["3n4b5urk1ft4fl3mg5e62d9ado".into()];
        })
        .await;
        let cognito = |client: &str, use_: &str| {
            ts.token()
                .iss(iss)
                .no_typ()
                .without("aud")
                .claim("client_id", client)
                .claim("token_use", use_)
                .scope("billing/invoices.read")
                .sign()
        };
        let c = check(&v, cognito("3n4b5urk1ft4fl3mg5e62d9ado", "access"))
            .await
            .unwrap();
        assert_eq!(scopes(&c), "billing/invoices.read");
        assert_eq!(
            check(&v, cognito("another-app-client", "access"))
                .await
                .unwrap_err(),
            VerifyError::Invalid(InvalidReason::AudienceMismatch)
        );
        assert_eq!(
            check(&v, cognito("3n4b5urk1ft4fl3mg5e62d9ado", "id"))
                .await
                .unwrap_err(),
            VerifyError::Invalid(InvalidReason::MissingClaim)
        );
    }

    #[test]
    fn issuers_of_the_wrong_form_are_refused_at_start() {
        let refused = |issuer: &str, preset: IdpPreset| {
            let mut c = JwtIssuerConfig::new(issuer, AUD);
            preset.apply(&mut c).unwrap_err()
        };
        assert!(
            refused(
                "https://login.microsoftonline.com/common/v2.0",
                IdpPreset::Entra
            )
            .contains("multi-tenant")
        );
        assert!(refused("https://acme.okta.com", IdpPreset::Okta).contains("org authorization"));
        assert!(refused("https://acme.auth0.com", IdpPreset::Auth0).contains("trailing slash"));
        refused("https://sso.example.com/auth", IdpPreset::Keycloak);
        refused(
            "https://cognito-idp.eu-west-1.amazonaws.com",
            IdpPreset::Cognito,
        );
        refused("http://acme.zitadel.cloud", IdpPreset::Zitadel);
        // v1 issuers keep their trailing slash and get the v1 keys.
        let mut c = JwtIssuerConfig::new(format!("https://sts.windows.net/{TENANT}/"), AUD);
        IdpPreset::Entra.apply(&mut c).unwrap();
        assert!(c.jwks_uri.unwrap().as_str().ends_with("/discovery/keys"));
    }
}
