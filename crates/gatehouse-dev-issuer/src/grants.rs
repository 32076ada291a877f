//! The interactive flows: the authorization request and the user's decision, the authorization
//! code grant with PKCE (OAuth 2.1 §4.1, RFC 7636), rotated refresh tokens (OAuth 2.1 §4.3),
//! dynamic client registration (RFC 7591) and client ID metadata documents. Their state, and its
//! bounds, is in `interactive.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::clients::{
    AuthMethod, OAuthClient, Refusal, fetch_metadata_document, is_metadata_document_url,
    parse_client_metadata,
};
use crate::config::{ClientSecret, DevUser};
use crate::interactive::{
    CODE_MEMORY, CODE_TTL, CodeGrant, DOCUMENT_CACHE_TTL, Decision, Interactive,
    MAX_CACHED_DOCUMENTS, MAX_CODES, MAX_PENDING, MAX_REFRESH, MAX_REGISTERED_CLIENTS, PENDING_TTL,
    Pending, REFRESH_TTL, RefreshGrant, State, hash, is_code_verifier, is_s256_challenge,
    make_room, pkce_matches, random_token,
};
use crate::issuer::DevIssuer;
use crate::rules::{check_resource, is_scope_token, secret_matches};

/// Parameters of an authorization request after the client and redirect URI are trusted.
pub(crate) struct AuthorizeParams<'a> {
    pub response_type: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub code_challenge_method: Option<&'a str>,
    pub resources: &'a [String],
    pub scope: Option<&'a str>,
    pub state: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

impl DevIssuer {
    fn interactive(&self) -> &Interactive {
        self.inner
            .interactive
            .as_ref()
            .expect("interactive routes exist only with users")
    }

    /// The demo users (empty: no interactive flows).
    pub fn users(&self) -> &[DevUser] {
        self.inner
            .interactive
            .as_ref()
            .map_or(&[], |i| i.users.as_slice())
    }

    /// RFC 7591 §3: registers a client from its metadata (a JSON object).
    pub(crate) fn register(&self, doc: &Map<String, Value>) -> Result<Value, Refusal> {
        // RFC 7591 §2: the default method is client_secret_basic.
        let mut client = parse_client_metadata(doc, AuthMethod::ClientSecretBasic)?;
        client.client_id = format!("dcr-{}", random_token());
        client.issued_at = self.now();
        if client.auth != AuthMethod::None {
            client.secret = Some(ClientSecret::new(random_token()));
        }
        let mut state = self.interactive().state();
        if state.registered.len() >= MAX_REGISTERED_CLIENTS {
            return Err(Refusal::new(
                "invalid_client_metadata",
                "this development server holds no more registered clients; restart it",
            ));
        }
        let response = client.registration_response();
        tracing::info!(client_id = %client.client_id, auth = client.auth.as_str(), "registered client");
        state
            .registered
            .insert(client.client_id.clone(), Arc::new(client));
        Ok(response)
    }

    /// Authenticates a confidential registered client in constant time, by the method it
    /// registered (RFC 7591 §2: the method is part of the registration).
    pub(crate) fn authenticate_registered(
        &self,
        client_id: &str,
        secret: &str,
        method: AuthMethod,
    ) -> Option<OAuthClient> {
        let client = self.registered_client(client_id);
        let ok = secret_matches(client.as_ref().and_then(|c| c.secret.as_ref()), secret);
        client
            .filter(|c| ok && c.auth == method)
            .map(|c| (*c).clone())
    }

    /// A dynamically registered client.
    pub(crate) fn registered_client(&self, client_id: &str) -> Option<Arc<OAuthClient>> {
        self.interactive()
            .state()
            .registered
            .get(client_id)
            .cloned()
    }

    /// The client behind an authorization request's `client_id`: a registered one, or one
    /// described by the metadata document at that URL (fetched, or cached for a few minutes).
    /// The error is a fixed message for the error page.
    pub(crate) async fn resolve_client(
        &self,
        client_id: &str,
    ) -> Result<Arc<OAuthClient>, &'static str> {
        if let Some(c) = self.registered_client(client_id) {
            return Ok(c);
        }
        if !is_metadata_document_url(client_id) {
            return Err("unknown client");
        }
        let now = self.now();
        let ix = self.interactive();
        if let Some((expires, c)) = ix.state().documents.get(client_id)
            && *expires > now
        {
            return Ok(c.clone());
        }
        let client =
            Arc::new(fetch_metadata_document(&ix.http, client_id, ix.document_timeout).await?);
        let mut state = ix.state();
        let docs = &mut state.documents;
        if make_room(docs, MAX_CACHED_DOCUMENTS, |(e, _)| *e <= now) {
            docs.insert(
                client_id.to_owned(),
                (now + DOCUMENT_CACHE_TTL, client.clone()),
            );
        }
        Ok(client)
    }

    /// Validates an authorization request for a trusted client and redirect URI and keeps it
    /// under a fresh transaction id until the user decides. Errors are redirected.
    pub(crate) fn begin_authorization(
        &self,
        client: &OAuthClient,
        redirect_uri: String,
        redirect_uri_sent: bool,
        p: &AuthorizeParams<'_>,
    ) -> Result<(String, Pending), Refusal> {
        let invalid = |d| Refusal::new("invalid_request", d);
        match p.response_type {
            None => return Err(invalid("response_type is required")),
            Some("code") => {}
            Some(_) => {
                return Err(Refusal::new(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        // OAuth 2.1 §4.1.1: PKCE is required; only S256 (plain would put the verifier in the
        // front channel).
        let challenge = p
            .code_challenge
            .ok_or(invalid("code_challenge is required"))?;
        if p.code_challenge_method != Some("S256") {
            return Err(invalid("code_challenge_method must be S256"));
        }
        if !is_s256_challenge(challenge) {
            return Err(invalid("code_challenge is malformed"));
        }
        // RFC 8707: one token, one audience; this server requires it to be named.
        let resource = match p.resources {
            [one] => one,
            [] => {
                return Err(Refusal::new(
                    "invalid_target",
                    "the resource parameter is required",
                ));
            }
            _ => {
                return Err(Refusal::new(
                    "invalid_target",
                    "request one resource per authorization",
                ));
            }
        };
        check_resource(resource).map_err(|_| {
            Refusal::new(
                "invalid_target",
                "resource must be an absolute URI without a fragment",
            )
        })?;
        let scopes = match p.scope {
            None => None,
            Some(raw) => {
                let mut out: Vec<String> = Vec::new();
                for s in raw.split(' ') {
                    if !is_scope_token(s) {
                        return Err(Refusal::new("invalid_scope", "scope is malformed"));
                    }
                    if !out.iter().any(|o| o == s) {
                        out.push(s.to_owned());
                    }
                }
                Some(out)
            }
        };
        let now = self.now();
        let pending = Pending {
            client_id: client.client_id.clone(),
            client_label: client
                .client_name
                .clone()
                .unwrap_or_else(|| client.client_id.clone()),
            redirect_uri,
            redirect_uri_sent,
            state: p.state.map(str::to_owned),
            code_challenge: challenge.to_owned(),
            resource: resource.clone(),
            scopes,
            nonce: p.nonce.map(str::to_owned),
            refresh: client.refresh,
            expires_at: now + PENDING_TTL,
        };
        let mut state = self.interactive().state();
        if !make_room(&mut state.pending, MAX_PENDING, |p| p.expires_at <= now) {
            return Err(Refusal::new(
                "temporarily_unavailable",
                "too many pending authorization requests",
            ));
        }
        let txn = random_token();
        state.pending.insert(txn.clone(), pending.clone());
        Ok((txn, pending))
    }

    /// The user's decision on a pending request. The transaction is consumed whatever happens.
    /// `Err` is a fixed message for the error page (the request cannot be trusted to redirect).
    pub(crate) fn decide(
        &self,
        transaction: &str,
        user: Option<&str>,
        decision: &str,
    ) -> Result<Decision, &'static str> {
        let now = self.now();
        let ix = self.interactive();
        let mut state = ix.state();
        let req = state
            .pending
            .remove(transaction)
            .filter(|p| p.expires_at > now)
            .ok_or("this sign-in page has expired or was already used; start again")?;
        let redirect = |params: Vec<(&'static str, String)>| {
            let mut params = params;
            if let Some(s) = &req.state {
                params.push(("state", s.clone()));
            }
            // RFC 9207: lets the client check which server answered.
            params.push(("iss", self.issuer().to_owned()));
            Decision {
                redirect_uri: req.redirect_uri.clone(),
                params,
            }
        };
        let error = |r: Refusal| {
            redirect(vec![
                ("error", r.code.to_owned()),
                ("error_description", r.description.to_owned()),
            ])
        };
        match decision {
            "deny" => {
                return Ok(error(Refusal::new(
                    "access_denied",
                    "the user denied the request",
                )));
            }
            "approve" => {}
            _ => return Err("unknown decision"),
        }
        let user = user
            .and_then(|u| ix.user(u))
            .ok_or("unknown user: pick one of the listed users")?;
        let may = |s: &str| s == "openid" || user.allowed_scopes.iter().any(|a| a == s);
        let granted: Vec<String> = match &req.scopes {
            None => user.allowed_scopes.clone(),
            Some(requested) => {
                let g: Vec<String> = requested.iter().filter(|s| may(s)).cloned().collect();
                if g.is_empty() {
                    return Ok(error(Refusal::new(
                        "invalid_scope",
                        "the user may grant none of the requested scopes",
                    )));
                }
                g
            }
        };
        if !make_room(&mut state.codes, MAX_CODES, |c| c.forget_at <= now) {
            return Ok(error(Refusal::new(
                "temporarily_unavailable",
                "too many outstanding authorization codes",
            )));
        }
        let code = random_token();
        tracing::info!(client_id = %req.client_id, user = %user.name, scope = %granted.join(" "), "issued authorization code");
        state.codes.insert(
            code.clone(),
            CodeGrant {
                request: req.clone(),
                user: user.name.clone(),
                scopes: granted,
                auth_time: now,
                expires_at: now + CODE_TTL,
                forget_at: now + CODE_MEMORY,
                used: false,
                family: None,
            },
        );
        Ok(redirect(vec![("code", code)]))
    }

    /// `grant_type=authorization_code` (OAuth 2.1 §4.1.3) for an authenticated client.
    pub(crate) fn redeem_code(
        &self,
        client: &OAuthClient,
        form: &TokenParams<'_>,
        dpop_jkt: Option<&str>,
    ) -> Result<Value, Refusal> {
        let bad_grant = |d| Refusal::new("invalid_grant", d);
        let code = form
            .code
            .ok_or(Refusal::new("invalid_request", "code is required"))?;
        let verifier = form
            .code_verifier
            .ok_or(Refusal::new("invalid_request", "code_verifier is required"))?;
        let resource = single_resource(form.resources)?;
        let now = self.now();
        let ix = self.interactive();
        let mut state = ix.state();
        let State { codes, refresh, .. } = &mut *state;
        let grant = codes
            .get_mut(code)
            .filter(|c| c.forget_at > now)
            .ok_or(bad_grant("the authorization code is invalid"))?;
        if grant.used {
            // RFC 6749 §4.1.2: a replayed code revokes what it produced.
            if let Some(family) = grant.family.take() {
                refresh.retain(|_, r| r.family != family);
                tracing::warn!(client_id = %grant.request.client_id, "authorization code replayed; revoked its refresh tokens");
            }
            return Err(bad_grant("the authorization code is invalid"));
        }
        // One attempt per code, successful or not.
        grant.used = true;
        if grant.expires_at <= now {
            return Err(bad_grant("the authorization code has expired"));
        }
        let req = grant.request.clone();
        if req.client_id != client.client_id {
            return Err(bad_grant(
                "the authorization code was issued to another client",
            ));
        }
        let redirect_ok = match form.redirect_uri {
            Some(r) => r == req.redirect_uri,
            None => !req.redirect_uri_sent,
        };
        if !redirect_ok {
            return Err(bad_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        if !is_code_verifier(verifier) || !pkce_matches(verifier, &req.code_challenge) {
            return Err(bad_grant("code_verifier does not match the code_challenge"));
        }
        if resource.is_some_and(|r| r != req.resource) {
            return Err(Refusal::new(
                "invalid_target",
                "resource differs from the authorized one",
            ));
        }
        let user = ix
            .user(&grant.user)
            .ok_or(bad_grant("the authorization code is invalid"))?;
        let scopes = grant.scopes.clone();
        let resource = req.resource;
        let nonce = req.nonce;
        let auth_time = grant.auth_time;
        let refresh_token = if req.refresh {
            let family = random_token();
            grant.family = Some(family.clone());
            Some(store_refresh(
                refresh,
                now,
                RefreshGrant {
                    family,
                    client_id: client.client_id.clone(),
                    user: user.name.clone(),
                    resource: resource.clone(),
                    scopes: scopes.clone(),
                    expires_at: now + REFRESH_TTL,
                    rotated: false,
                    // RFC 9449 §5: a public client's refresh token is bound to the key it
                    // proved, or a stolen refresh token would mint bound tokens for the thief.
                    jkt: (client.auth == AuthMethod::None)
                        .then(|| dpop_jkt.map(str::to_owned))
                        .flatten(),
                },
            ))
        } else {
            None
        };
        drop(state);
        let mut body = self.user_token_response(
            client,
            user,
            &scopes.join(" "),
            &resource,
            dpop_jkt,
            refresh_token,
        );
        if scopes.iter().any(|s| s == "openid") {
            body["id_token"] =
                json!(self.id_token(user.sub(), &client.client_id, nonce.as_deref(), auth_time));
        }
        Ok(body)
    }

    /// `grant_type=refresh_token` (OAuth 2.1 §4.3) with rotation and reuse detection.
    pub(crate) fn refresh(
        &self,
        client: &OAuthClient,
        form: &TokenParams<'_>,
        dpop_jkt: Option<&str>,
    ) -> Result<Value, Refusal> {
        let bad_grant = || Refusal::new("invalid_grant", "the refresh token is invalid");
        let token = form
            .refresh_token
            .ok_or(Refusal::new("invalid_request", "refresh_token is required"))?;
        let resource = single_resource(form.resources)?;
        let now = self.now();
        let ix = self.interactive();
        let mut state = ix.state();
        let key = hash(token);
        let grant = state
            .refresh
            .get(&key)
            .filter(|r| r.expires_at > now)
            .cloned()
            .ok_or_else(bad_grant)?;
        if grant.rotated {
            // Security BCP §4.14.2: either the client or an attacker holds a stale copy;
            // nobody can tell which, so the whole family goes.
            let family = grant.family.clone();
            state.refresh.retain(|_, r| r.family != family);
            tracing::warn!(client_id = %client.client_id, "rotated refresh token reused; revoked its family");
            return Err(bad_grant());
        }
        if grant.client_id != client.client_id {
            return Err(bad_grant());
        }
        if grant.jkt.is_some() && grant.jkt.as_deref() != dpop_jkt {
            // RFC 9449 §5: the refresh must prove the key the family is bound to.
            return Err(Refusal::new(
                "invalid_grant",
                "the refresh token is bound to another DPoP key",
            ));
        }
        if resource.is_some_and(|r| r != grant.resource) {
            return Err(Refusal::new(
                "invalid_target",
                "resource differs from the authorized one",
            ));
        }
        // RFC 6749 §6: the scope may only narrow; the new refresh token keeps the original
        // grant.
        let scope = match form.scope {
            None => grant.scopes.join(" "),
            Some(raw) => {
                let mut out: Vec<&str> = Vec::new();
                for s in raw.split(' ') {
                    if !is_scope_token(s) || !grant.scopes.iter().any(|g| g == s) {
                        return Err(Refusal::new(
                            "invalid_scope",
                            "a refresh may only narrow the granted scopes",
                        ));
                    }
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                out.join(" ")
            }
        };
        let user = ix.user(&grant.user).ok_or_else(bad_grant)?;
        let successor = RefreshGrant {
            family: grant.family.clone(),
            client_id: grant.client_id.clone(),
            user: grant.user.clone(),
            resource: grant.resource.clone(),
            scopes: grant.scopes.clone(),
            expires_at: now + REFRESH_TTL,
            rotated: false,
            jkt: grant.jkt.clone(),
        };
        let resource = grant.resource.clone();
        if let Some(old) = state.refresh.get_mut(&key) {
            old.rotated = true;
        }
        let new_token = store_refresh(&mut state.refresh, now, successor);
        drop(state);
        Ok(self.user_token_response(client, user, &scope, &resource, dpop_jkt, Some(new_token)))
    }

    fn user_token_response(
        &self,
        client: &OAuthClient,
        user: &DevUser,
        scope: &str,
        resource: &str,
        dpop_jkt: Option<&str>,
        refresh_token: Option<String>,
    ) -> Value {
        let issued = self.sign_token(
            user.sub(),
            user.tenant.as_deref(),
            &client.client_id,
            scope,
            resource,
            dpop_jkt,
        );
        let mut body = json!({
            "access_token": issued.access_token,
            "token_type": if dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        });
        if let Some(r) = refresh_token {
            body["refresh_token"] = json!(r);
        }
        body
    }
}

/// The token request parameters of the two interactive grants.
pub(crate) struct TokenParams<'a> {
    pub code: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub resources: &'a [String],
}

fn single_resource(resources: &[String]) -> Result<Option<&str>, Refusal> {
    match resources {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(Refusal::new(
            "invalid_target",
            "request one resource per token",
        )),
    }
}

/// Stores a refresh grant under a fresh token and returns the token. When the store is full
/// even after dropping expired entries, the entry closest to expiry is evicted: the store
/// stays bounded and its oldest sessions end first.
fn store_refresh(map: &mut HashMap<String, RefreshGrant>, now: u64, grant: RefreshGrant) -> String {
    if !make_room(map, MAX_REFRESH, |r| r.expires_at <= now)
        && let Some(k) = map
            .iter()
            .min_by_key(|(_, r)| r.expires_at)
            .map(|(k, _)| k.clone())
    {
        map.remove(&k);
    }
    let token = random_token();
    map.insert(hash(&token), grant);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_known_vector() {
        // Computed independently: base64url(sha256(verifier)) with Python's hashlib.
        let verifier = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
        assert!(is_code_verifier(verifier));
        assert!(is_s256_challenge(challenge));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(&verifier.replace('d', "e"), challenge));
        assert!(!is_code_verifier("short"));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn full_stores_make_room_from_expired_entries_only() {
        let mut m: HashMap<String, u64> = (0..3).map(|i| (i.to_string(), i)).collect();
        assert!(!make_room(&mut m, 3, |_| false));
        assert!(make_room(&mut m, 3, |v| *v == 0));
        assert_eq!(m.len(), 2);
    }
}
