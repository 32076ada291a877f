//! One matrix row and the one helper that checks it: status, every `WWW-Authenticate`
//! parameter, `Retry-After`, the exact body (or the exact `Caller` the tool saw), the edge's
//! reason code, and how much verification work the request caused (cache, JWKS and
//! introspection counters, attacker hits).

use crate::challenge::{self, Params};
use crate::context::{Auth, Counters, RETRY_AFTER_SECS, Reply, TestContext};

/// What the authenticator's cache should have seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Refused at the edge: the authenticator was not called.
    Edge,
    /// Verified (the chain ran).
    Miss,
    /// Answered from the verified-token cache.
    Hit,
    /// Answered from the negative cache.
    NegativeHit,
}

#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// 200 and the tool reported exactly this caller.
    Ok(String),
    Refused {
        status: u16,
        /// `None`: no `WWW-Authenticate` at all.
        challenge: Option<Params>,
        body: &'static str,
        retry_after: Option<String>,
    },
}

/// One request and everything expected of it.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) name: String,
    /// spec-requirements.md rows (or RFC sections) the case covers.
    pub(crate) rows: &'static str,
    pub(crate) tool: &'static str,
    pub(crate) auth: Auth,
    pub(crate) expect: Expect,
    /// Reason codes the edge reports (empty on success).
    pub(crate) reasons: Vec<&'static str>,
    /// Tool denials the edge reports (`tool:scopes`).
    pub(crate) denials: Vec<String>,
    pub(crate) verify: Verify,
    pub(crate) jwks_x: u64,
    pub(crate) jwks_y: u64,
    pub(crate) introspection: u64,
}

impl Case {
    fn new(name: &str, rows: &'static str, auth: Auth, expect: Expect, verify: Verify) -> Self {
        Self {
            name: name.to_owned(),
            rows,
            tool: "lookup_invoice",
            auth,
            expect,
            reasons: Vec::new(),
            denials: Vec::new(),
            verify,
            jwks_x: 0,
            jwks_y: 0,
            introspection: 0,
        }
    }

    /// 200; the tool saw `caller` (see [`crate::common::echo`]).
    pub(crate) fn ok(name: &str, rows: &'static str, token: &str, caller: Echo) -> Self {
        let tool = caller.tool;
        let expect = Expect::Ok(caller.render());
        let mut c = Self::new(name, rows, bearer(token), expect, Verify::Miss);
        c.tool = tool;
        c
    }

    /// Refused with `status`, `challenge` (`None`: no `WWW-Authenticate`), exactly `body` and
    /// `retry_after`, after verification ([`Verify::Miss`]).
    fn refused(
        name: &str,
        rows: &'static str,
        auth: Auth,
        status: u16,
        challenge: Option<Params>,
        body: &'static str,
        retry_after: Option<String>,
    ) -> Self {
        let expect = Expect::Refused {
            status,
            challenge,
            body,
            retry_after,
        };
        Self::new(name, rows, auth, expect, Verify::Miss)
    }

    /// 401 `invalid_token` after verification refused the token for `reason`.
    pub(crate) fn invalid(
        ctx: &TestContext,
        name: &str,
        rows: &'static str,
        token: &str,
        reason: &'static str,
    ) -> Self {
        let challenge = challenge::invalid_token(&ctx.metadata_url());
        let body = challenge::BODY_INVALID_TOKEN;
        Self::refused(name, rows, bearer(token), 401, Some(challenge), body, None).reason(reason)
    }

    /// 400 `invalid_request`, refused before any verification.
    pub(crate) fn malformed(
        ctx: &TestContext,
        name: &str,
        rows: &'static str,
        auth: Auth,
        reason: &'static str,
    ) -> Self {
        let challenge = challenge::invalid_request(&ctx.metadata_url());
        let body = challenge::BODY_INVALID_REQUEST;
        Self::refused(name, rows, auth, 400, Some(challenge), body, None)
            .verify(Verify::Edge)
            .reason(reason)
    }

    /// 401 without `error`: no credentials were presented.
    pub(crate) fn no_credentials(
        ctx: &TestContext,
        name: &str,
        rows: &'static str,
        auth: Auth,
    ) -> Self {
        let challenge = challenge::missing(&ctx.metadata_url());
        let body = challenge::BODY_UNAUTHORIZED;
        Self::refused(name, rows, auth, 401, Some(challenge), body, None)
            .verify(Verify::Edge)
            .reason("request.no_credentials")
    }

    /// 403 `insufficient_scope` naming `scope` for a call of `tool`.
    pub(crate) fn insufficient(
        ctx: &TestContext,
        name: &str,
        rows: &'static str,
        token: &str,
        tool: &'static str,
        scope: &str,
    ) -> Self {
        let challenge = challenge::insufficient(&ctx.metadata_url(), scope);
        let body = challenge::BODY_INSUFFICIENT_SCOPE;
        let mut c = Self::refused(name, rows, bearer(token), 403, Some(challenge), body, None)
            .reason("policy.insufficient_scope");
        c.tool = tool;
        c
    }

    /// 503 + `Retry-After`, no challenge: the token could not be decided.
    pub(crate) fn unavailable(
        name: &str,
        rows: &'static str,
        token: &str,
        reason: &'static str,
    ) -> Self {
        let body = challenge::BODY_UNAVAILABLE;
        let retry_after = Some(RETRY_AFTER_SECS.to_string());
        Self::refused(name, rows, bearer(token), 503, None, body, retry_after).reason(reason)
    }

    /// The edge reports `reason` (and nothing else) for this request.
    fn reason(mut self, reason: &'static str) -> Self {
        self.reasons = vec![reason];
        self
    }

    pub(crate) fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub(crate) fn jwks(mut self, n: u64) -> Self {
        self.jwks_x = n;
        self
    }

    pub(crate) fn jwks_y(mut self, n: u64) -> Self {
        self.jwks_y = n;
        self
    }

    pub(crate) fn introspections(mut self, n: u64) -> Self {
        self.introspection = n;
        self
    }

    pub(crate) fn verify(mut self, v: Verify) -> Self {
        self.verify = v;
        self
    }

    pub(crate) fn denial(mut self, d: &str) -> Self {
        self.denials.push(d.to_owned());
        self
    }
}

/// The caller description a tool is expected to print.
#[derive(Debug, Clone)]
pub(crate) struct Echo {
    pub(crate) tool: &'static str,
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) client: String,
    pub(crate) scopes: String,
    pub(crate) tenant: String,
    pub(crate) kind: &'static str,
}

impl Echo {
    /// The testkit defaults of issuer `iss`'s tokens (ES256, all invoice scopes, no tenant).
    pub(crate) fn new(iss: &str) -> Self {
        Self {
            tool: "lookup_invoice",
            iss: iss.to_owned(),
            sub: gatehouse_testkit::DEFAULT_SUBJECT.to_owned(),
            client: gatehouse_testkit::DEFAULT_CLIENT_ID.to_owned(),
            scopes: "invoices:read invoices:write".to_owned(),
            tenant: "-".to_owned(),
            kind: "Jwt",
        }
    }
    pub(crate) fn tool(mut self, t: &'static str) -> Self {
        self.tool = t;
        self
    }
    pub(crate) fn sub(mut self, s: &str) -> Self {
        self.sub = s.to_owned();
        self
    }
    pub(crate) fn client(mut self, s: &str) -> Self {
        self.client = s.to_owned();
        self
    }
    pub(crate) fn scopes(mut self, s: &str) -> Self {
        self.scopes = s.to_owned();
        self
    }
    pub(crate) fn tenant(mut self, s: &str) -> Self {
        self.tenant = s.to_owned();
        self
    }
    pub(crate) fn introspected(mut self) -> Self {
        self.kind = "Introspected";
        self
    }
    /// The text of [`crate::common::echo`]; the token never reaches the tool.
    pub(crate) fn render(&self) -> String {
        format!(
            "{} iss={} sub={} client={} scopes={} tenant={} kind={} saw_token=false",
            self.tool, self.iss, self.sub, self.client, self.scopes, self.tenant, self.kind
        )
    }
}

/// `Authorization: Bearer <token>`.
fn bearer(token: &str) -> Auth {
    Auth::Bearer(token.to_owned())
}

fn delta(after: u64, before: u64) -> u64 {
    after.saturating_sub(before)
}

/// Sends the case's request and compares everything. Returns the reply (for challenge
/// snapshots) or every mismatch found.
pub(crate) async fn check(ctx: &TestContext, case: &Case) -> Result<Reply, String> {
    // Anything left over from an earlier request would be blamed on this one.
    ctx.observer.take_reasons();
    ctx.observer.take_denials();
    let before = ctx.counters();
    let reply = ctx.call(case.tool, &case.auth).await;
    let after = ctx.counters();
    let mut errors = Vec::new();
    let mut expect = |what: &str, ok: bool, detail: String| {
        if !ok {
            errors.push(format!("{what}: {detail}"));
        }
    };

    match &case.expect {
        Expect::Ok(caller) => {
            expect(
                "status",
                reply.status == 200,
                format!("{} (body {})", reply.status, reply.body),
            );
            let text = reply.tool_text();
            expect(
                "caller",
                text.as_ref() == Ok(caller),
                format!("got {text:?}, want {caller:?}"),
            );
            expect(
                "WWW-Authenticate",
                reply.www_authenticate.is_empty(),
                format!("{:?} on success", reply.www_authenticate),
            );
        }
        Expect::Refused {
            status,
            challenge: want,
            body,
            retry_after,
        } => {
            expect(
                "status",
                reply.status == *status,
                format!("{} != {status}", reply.status),
            );
            match (want, reply.www_authenticate.as_slice()) {
                (None, []) => {}
                (None, got) => expect("WWW-Authenticate", false, format!("unexpected {got:?}")),
                (Some(want), [one]) => match challenge::parse(one) {
                    Ok(got) => expect(
                        "WWW-Authenticate",
                        &got == want,
                        format!("got {got:?}, want {want:?}"),
                    ),
                    Err(e) => expect("WWW-Authenticate", false, e),
                },
                (Some(_), got) => expect(
                    "WWW-Authenticate",
                    false,
                    format!("want exactly one challenge, got {got:?}"),
                ),
            }
            expect(
                "body",
                reply.body == *body,
                format!("{:?} != {body:?}", reply.body),
            );
            expect(
                "Retry-After",
                reply.retry_after == *retry_after,
                format!("{:?} != {retry_after:?}", reply.retry_after),
            );
            expect(
                "Content-Type",
                reply.content_type.as_deref() == Some("application/json"),
                format!("{:?}", reply.content_type),
            );
            expect(
                "Cache-Control",
                reply.cache_control.as_deref() == Some("no-store"),
                format!("{:?}", reply.cache_control),
            );
        }
    }

    let reasons = ctx.observer.take_reasons();
    expect(
        "reason",
        reasons == case.reasons,
        format!("{reasons:?} != {:?}", case.reasons),
    );
    let denials = ctx.observer.take_denials();
    expect(
        "tool denials",
        denials == case.denials,
        format!("{denials:?} != {:?}", case.denials),
    );
    let Counters {
        jwks_x,
        jwks_y,
        introspection,
        attacker,
        cache,
    } = after;
    let work = (
        delta(cache.misses, before.cache.misses),
        delta(cache.hits, before.cache.hits),
        delta(cache.negative_hits, before.cache.negative_hits),
    );
    let want_work = match case.verify {
        Verify::Edge => (0, 0, 0),
        Verify::Miss => (1, 0, 0),
        Verify::Hit => (0, 1, 0),
        Verify::NegativeHit => (0, 0, 1),
    };
    expect(
        "cache (misses, hits, negative hits)",
        work == want_work,
        format!("{work:?} != {want_work:?} ({:?})", case.verify),
    );
    let fetches = (
        delta(jwks_x, before.jwks_x),
        delta(jwks_y, before.jwks_y),
        delta(introspection, before.introspection),
        delta(attacker, before.attacker),
    );
    let want_fetches = (case.jwks_x, case.jwks_y, case.introspection, 0);
    expect(
        "fetches (jwks X, jwks Y, introspection, attacker)",
        fetches == want_fetches,
        format!("{fetches:?} != {want_fetches:?}"),
    );

    if errors.is_empty() {
        Ok(reply)
    } else {
        Err(format!(
            "case {:?} [{}]:\n    {}",
            case.name,
            case.rows,
            errors.join("\n    ")
        ))
    }
}

/// Runs every case in order (they share one context; counters are compared per case) and
/// fails once, listing every failing case. Returns the replies in case order.
pub(crate) async fn check_all(ctx: &TestContext, cases: &[Case]) -> Vec<Reply> {
    let mut failures = Vec::new();
    let mut replies = Vec::new();
    for case in cases {
        match check(ctx, case).await {
            Ok(r) => replies.push(r),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    replies
}
