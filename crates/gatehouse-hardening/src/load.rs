//! Mixed traffic from `c` concurrent clients, each answer checked against what that kind of
//! request must get, counted per kind, with latencies per reporting window.
//!
//! Legitimate clients send from 127.0.0.1 and the attacker from 127.0.0.2 (both loopback), so
//! the per-address limit sees them as two addresses, as it would see an office and an attacker.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::tokens::{READER_ACME, READER_GLOBEX, Tokens};

/// What a request is, and so what it must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    /// `lookup_invoice` with a reused token (acme and globex in turn).
    ReusedCall,
    /// `list_invoices` with a reused token.
    ReusedList,
    /// `tools/list` with a reused token.
    ToolsList,
    /// `invoice_history` with a reused token.
    History,
    /// `lookup_invoice` with a token never sent before, under the key the server holds.
    NewToken,
    /// `lookup_invoice` with a new token under a key the issuer published after the server's
    /// last good fetch: `200` once fetched, `503 + Retry-After` while it cannot be fetched.
    FreshKey,
    /// `lookup_invoice` with the reused opaque token (introspected, then cached for at most
    /// the introspection cap, 60 s, then introspected again: `503 + Retry-After` while that
    /// fails — a revoked token must not live on because the endpoint is down).
    OpaqueReused,
    /// `lookup_invoice` with a new opaque token (one introspection each).
    OpaqueNew,
    /// `void_invoice` with a read-only token: `403 insufficient_scope`; the client then
    /// re-authorizes with `invoices:write` and voids ([`Kind::Void`]).
    StepUp,
    /// `void_invoice` of the next open invoice with the writer's token.
    Void,
    /// Attacker: a valid token with one signature bit flipped.
    Tampered,
    /// Attacker: a token expired ten minutes ago.
    Expired,
    /// Attacker: a token for another resource.
    WrongAudience,
    /// Attacker: a token under a key the issuer never published (a `kid` nobody knows).
    ForgedKid,
    /// Attacker: an opaque token introspection calls inactive.
    OpaqueInactive,
    /// No token at all: the `401` challenge that starts discovery.
    NoToken,
}

impl Kind {
    /// Sent from the attacker's address.
    pub(crate) fn attacker(self) -> bool {
        matches!(
            self,
            Kind::Tampered
                | Kind::Expired
                | Kind::WrongAudience
                | Kind::ForgedKid
                | Kind::OpaqueInactive
        )
    }

    /// Decided without the authorization server when the server holds its keys: the traffic
    /// whose latency an outage must not touch. (Not the reused opaque token: its cached
    /// verification lapses at least once a minute and is introspected again.)
    pub(crate) fn local(self) -> bool {
        matches!(
            self,
            Kind::ReusedCall
                | Kind::ReusedList
                | Kind::ToolsList
                | Kind::History
                | Kind::NewToken
                | Kind::Void
                | Kind::StepUp
                | Kind::NoToken
        )
    }
}

/// How an answer was judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The success a legitimate request must get.
    Ok,
    /// The refusal this request must get (401, 403 for step-up, 429 for the attacker).
    Refused,
    /// `503 + Retry-After`: could not be verified now (allowed only where a verification needs
    /// an authorization server that is failing).
    Unverifiable,
    /// A `401` for a token the server can verify (its key is held, or introspection says
    /// active): a violation.
    False401,
    /// A `2xx` for a token that must be refused: a violation.
    InvalidAccepted,
    /// Anything else (wrong status, missing header, a tool error, a transport error): a
    /// violation.
    Error(String),
}

/// The part of an answer the verdict looks at.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: bool,
    pub(crate) www: String,
    pub(crate) body: String,
}

impl Answer {
    fn from(status: u16, headers: &HeaderMap, body: String) -> Answer {
        let h = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        Answer {
            status,
            retry_after: headers.contains_key(RETRY_AFTER),
            www: h(WWW_AUTHENTICATE),
            body,
        }
    }
}

/// The judgement of one answer to a request of `kind`.
pub(crate) fn classify(kind: Kind, a: &Answer) -> Verdict {
    let success =
        a.status == 200 && a.body.contains("\"result\"") && !a.body.contains("\"isError\":true");
    let unverifiable = a.status == 503 && a.retry_after;
    let invalid_token = a.status == 401 && a.www.contains("error=\"invalid_token\"");
    let other = || {
        Verdict::Error(format!(
            "{kind:?}: {} {:?} {}",
            a.status,
            a.www,
            a.body.chars().take(200).collect::<String>()
        ))
    };
    if kind.attacker() {
        if (200..300).contains(&a.status) {
            return Verdict::InvalidAccepted;
        }
        let refused = match kind {
            // Decided locally, always: no reason ever to answer anything but 401.
            Kind::Tampered | Kind::Expired | Kind::WrongAudience => invalid_token,
            // These reach the authorization server: while it fails they cannot be told from
            // valid ones (503), and the per-address limit may bar the sender (429).
            _ => invalid_token || unverifiable || (a.status == 429 && a.retry_after),
        };
        return if refused { Verdict::Refused } else { other() };
    }
    match kind {
        Kind::NoToken => {
            if a.status == 401 && a.www.contains("resource_metadata=") && !a.www.contains("error=")
            {
                Verdict::Refused
            } else {
                other()
            }
        }
        Kind::StepUp => {
            if a.status == 403
                && a.www.contains("error=\"insufficient_scope\"")
                && a.www.contains("invoices:write")
            {
                Verdict::Refused
            } else if a.status == 401 {
                Verdict::False401
            } else {
                other()
            }
        }
        Kind::FreshKey if success => Verdict::Ok,
        Kind::FreshKey if unverifiable => Verdict::Unverifiable,
        // Before the server has fetched the new key it may refuse it (at most one refresh
        // cooldown; the fault run checks that nothing is refused after the first success).
        Kind::FreshKey if a.status == 401 || a.status == 429 => Verdict::Refused,
        Kind::OpaqueNew | Kind::OpaqueReused if unverifiable => Verdict::Unverifiable,
        Kind::Void
            if success && !(a.body.contains("Voided") || a.body.contains("already void")) =>
        {
            other()
        }
        _ if success => Verdict::Ok,
        _ if a.status == 401 => Verdict::False401,
        _ => other(),
    }
}

/// Counts of one kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) refused: u64,
    pub(crate) unverifiable: u64,
    pub(crate) false_401: u64,
    pub(crate) invalid_accepted: u64,
    pub(crate) errors: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, o: &Tally) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.refused += o.refused;
        self.unverifiable += o.unverifiable;
        self.false_401 += o.false_401;
        self.invalid_accepted += o.invalid_accepted;
        self.errors += o.errors;
    }

    /// Answers that break a target.
    pub(crate) fn violations(&self) -> u64 {
        self.false_401 + self.invalid_accepted + self.errors
    }
}

/// What the clients saw since the last [`Load::drain`].
#[derive(Debug, Default)]
pub(crate) struct Window {
    pub(crate) by_kind: BTreeMap<Kind, Tally>,
    /// Latency of every request, µs.
    pub(crate) latency_all: Vec<u32>,
    /// Latency of the requests decided without the authorization server, µs.
    pub(crate) latency_local: Vec<u32>,
    /// Up to five violating answers, described.
    pub(crate) examples: Vec<String>,
}

impl Window {
    pub(crate) fn merge(&mut self, o: Window) {
        for (k, t) in o.by_kind {
            self.by_kind.entry(k).or_default().add(&t);
        }
        self.latency_all.extend(o.latency_all);
        self.latency_local.extend(o.latency_local);
        for e in o.examples {
            if self.examples.len() < 5 {
                self.examples.push(e);
            }
        }
    }

    pub(crate) fn total(&self) -> Tally {
        let mut t = Tally::default();
        for v in self.by_kind.values() {
            t.add(v);
        }
        t
    }
}

/// The `q` quantile (0..=1) of latencies in µs, as ms; 0 when empty.
pub(crate) fn quantile_ms(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    f64::from(v[i.min(v.len() - 1)]) / 1000.0
}

/// A weighted list of kinds, e.g. `&[(Kind::ReusedCall, 30), (Kind::Void, 5)]`.
pub(crate) fn mix(weights: &[(Kind, u32)]) -> Arc<Vec<Kind>> {
    let mut v = Vec::new();
    for &(k, w) in weights {
        v.extend(std::iter::repeat_n(k, w as usize));
    }
    assert!(!v.is_empty(), "an empty mix");
    Arc::new(v)
}

/// Tracks the requests of one kind that need the authorization server (a JWT under a freshly
/// published key, a new opaque token) after a fault ends: when the first was accepted, and how
/// many sent after that were still refused or unverifiable (a violation: the server could
/// verify them by then).
#[derive(Debug, Default)]
pub(crate) struct RecoveryTrack {
    /// Requests sent before this are not counted (they may have been verified before a fault).
    since: Mutex<Option<Instant>>,
    first_ok: Mutex<Option<Instant>>,
    pub(crate) late_refusals: AtomicU64,
}

impl RecoveryTrack {
    /// Forgets everything; only requests sent from now on count.
    pub(crate) fn reset(&self) {
        *self.since.lock().expect("lock") = Some(Instant::now());
        *self.first_ok.lock().expect("lock") = None;
        self.late_refusals.store(0, Ordering::SeqCst);
    }

    pub(crate) fn first_ok(&self) -> Option<Instant> {
        *self.first_ok.lock().expect("lock")
    }

    fn record(&self, sent: Instant, answered: Instant, v: &Verdict) {
        if self.since.lock().expect("lock").is_some_and(|s| sent < s) {
            return;
        }
        let mut first = self.first_ok.lock().expect("lock");
        match v {
            Verdict::Ok if first.is_none_or(|f| answered < f) => *first = Some(answered),
            // Sent after another client already saw the key accepted: the server knew it.
            Verdict::Refused | Verdict::Unverifiable if first.is_some_and(|f| sent > f) => {
                self.late_refusals.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// Running clients.
pub(crate) struct Load {
    windows: Vec<Arc<Mutex<Window>>>,
    mix: Arc<RwLock<Arc<Vec<Kind>>>>,
    /// Requests under a freshly published key.
    pub(crate) fresh: Arc<RecoveryTrack>,
    /// Requests with a new opaque token.
    pub(crate) opaque: Arc<RecoveryTrack>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Tracks {
    fresh: Arc<RecoveryTrack>,
    opaque: Arc<RecoveryTrack>,
}

struct Client {
    url: String,
    legit: reqwest::Client,
    attacker: reqwest::Client,
    tokens: Arc<Tokens>,
    voids: AtomicU64,
    turn: AtomicU64,
    invoices: i64,
}

fn http_client(from: Ipv4Addr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .pool_max_idle_per_host(usize::MAX)
        // Longer than anything the server may take (its own request timeout is 30 s), so a
        // timeout here is a server that stopped answering.
        .timeout(Duration::from_secs(40))
        .build()?)
}

impl Load {
    /// Starts `conns` clients against `url`.
    pub(crate) fn start(
        url: &str,
        tokens: Arc<Tokens>,
        invoices: i64,
        conns: usize,
        first: Arc<Vec<Kind>>,
    ) -> anyhow::Result<Load> {
        let client = Arc::new(Client {
            url: url.to_owned(),
            legit: http_client(Ipv4Addr::new(127, 0, 0, 1))?,
            attacker: http_client(Ipv4Addr::new(127, 0, 0, 2))?,
            tokens,
            voids: AtomicU64::new(0),
            turn: AtomicU64::new(0),
            invoices,
        });
        let mix = Arc::new(RwLock::new(first));
        let fresh = Arc::new(RecoveryTrack::default());
        let opaque = Arc::new(RecoveryTrack::default());
        let stop = CancellationToken::new();
        let mut windows = Vec::new();
        let mut tasks = Vec::new();
        for w in 0..conns {
            let window = Arc::new(Mutex::new(Window::default()));
            windows.push(window.clone());
            let (client, mix, stop) = (client.clone(), mix.clone(), stop.clone());
            let tracks = Tracks {
                fresh: fresh.clone(),
                opaque: opaque.clone(),
            };
            tasks.push(tokio::spawn(async move {
                let mut i: u64 = w as u64;
                loop {
                    let kinds = mix.read().expect("lock").clone();
                    // A multiplicative spread: every worker walks the whole mix, out of step.
                    let kind = kinds[(i.wrapping_mul(2_654_435_761) % kinds.len() as u64) as usize];
                    i += 1;
                    // Finish the request under way (bounded by the client's timeout): an
                    // aborted request is a client that hung up, which the server logs.
                    if stop.is_cancelled() {
                        return;
                    }
                    client.one(kind, &window, &tracks).await;
                }
            }));
        }
        Ok(Load {
            windows,
            mix,
            fresh,
            opaque,
            stop,
            tasks,
        })
    }

    pub(crate) fn set_mix(&self, m: Arc<Vec<Kind>>) {
        *self.mix.write().expect("lock") = m;
    }

    /// Everything counted since the last drain.
    pub(crate) fn drain(&self) -> Window {
        let mut all = Window::default();
        for w in &self.windows {
            all.merge(std::mem::take(&mut *w.lock().expect("lock")));
        }
        all
    }

    /// Stops the clients once their requests under way are answered (and counted).
    pub(crate) async fn stop(self) -> Window {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let mut all = Window::default();
        for w in &self.windows {
            all.merge(std::mem::take(&mut *w.lock().expect("lock")));
        }
        all
    }
}

fn call(name: &str, arguments: serde_json::Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
    .to_string()
}

impl Client {
    async fn one(&self, kind: Kind, window: &Mutex<Window>, tracks: &Tracks) {
        if kind == Kind::StepUp {
            // The read-only client is told which scope it lacks, re-authorizes with it and
            // retries: two requests.
            self.send(Kind::StepUp, window, tracks).await;
            self.send(Kind::Void, window, tracks).await;
        } else {
            self.send(kind, window, tracks).await;
        }
    }

    async fn send(&self, kind: Kind, window: &Mutex<Window>, tracks: &Tracks) {
        let t = &self.tokens;
        let reused = t.reused();
        let lookup = || call("lookup_invoice", json!({"invoiceId": "INV-2041"}));
        let mut forget = None;
        let (token, body): (Option<String>, String) = match kind {
            Kind::ReusedCall => {
                // Both tenants, in turn.
                let tok = if self.turn.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                    reused.reader_acme.clone()
                } else {
                    reused.reader_globex.clone()
                };
                (Some(tok), lookup())
            }
            Kind::ReusedList => (
                Some(reused.reader_globex.clone()),
                call("list_invoices", json!({"status": "open"})),
            ),
            Kind::ToolsList => (
                Some(reused.reader_acme.clone()),
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string(),
            ),
            Kind::History => (
                Some(reused.reader_acme.clone()),
                call("invoice_history", json!({"invoiceId": "INV-2041"})),
            ),
            Kind::NewToken => (Some(t.new_jwt(READER_ACME)), lookup()),
            Kind::FreshKey => match t.fresh_jwt(READER_GLOBEX) {
                Some(tok) => (Some(tok), lookup()),
                None => (Some(t.new_jwt(READER_GLOBEX)), lookup()),
            },
            Kind::OpaqueReused => (Some(t.opaque_reused.clone()), lookup()),
            Kind::OpaqueNew => {
                let tok = t.new_opaque();
                forget = Some(tok.clone());
                (Some(tok), lookup())
            }
            Kind::StepUp | Kind::Void => {
                let k = self.voids.fetch_add(1, Ordering::Relaxed);
                // Past the seeded open invoices the ids start over: voiding a void invoice is
                // answered "already void" (the tool is idempotent), also a success.
                let per_round = (self.invoices / 3).max(1) as u64;
                let id = gatehouse_bench::seed::open_invoice(k % per_round + 1, self.invoices)
                    .unwrap_or_else(|| "INV-2042".into());
                let tok = if kind == Kind::StepUp {
                    reused.reader_acme.clone()
                } else {
                    reused.writer_acme.clone()
                };
                (
                    Some(tok),
                    call(
                        "void_invoice",
                        json!({"invoiceId": id, "reason": "hardening run"}),
                    ),
                )
            }
            Kind::Tampered => (Some(t.tampered()), lookup()),
            Kind::Expired => (Some(t.expired()), lookup()),
            Kind::WrongAudience => (Some(t.wrong_audience()), lookup()),
            Kind::ForgedKid => (Some(t.forged_kid()), lookup()),
            Kind::OpaqueInactive => (Some(t.inactive_opaque()), lookup()),
            Kind::NoToken => (None, lookup()),
        };
        let http = if kind.attacker() {
            &self.attacker
        } else {
            &self.legit
        };
        let mut req = http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body);
        if let Some(tok) = &token {
            req = req.bearer_auth(tok);
        }
        let sent = Instant::now();
        let verdict = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                match r.text().await {
                    Ok(body) => classify(kind, &Answer::from(status, &headers, body)),
                    Err(e) => Verdict::Error(format!("{kind:?}: reading the body: {e}")),
                }
            }
            Err(e) => Verdict::Error(format!("{kind:?}: {e}")),
        };
        let answered = Instant::now();
        if let Some(tok) = forget {
            t.forget(&tok);
        }
        match kind {
            Kind::FreshKey => tracks.fresh.record(sent, answered, &verdict),
            Kind::OpaqueNew => tracks.opaque.record(sent, answered, &verdict),
            _ => {}
        }
        let micros = u32::try_from(answered.duration_since(sent).as_micros()).unwrap_or(u32::MAX);
        let mut w = window.lock().expect("lock");
        let tally = w.by_kind.entry(kind).or_default();
        tally.sent += 1;
        match &verdict {
            Verdict::Ok => tally.ok += 1,
            Verdict::Refused => tally.refused += 1,
            Verdict::Unverifiable => tally.unverifiable += 1,
            Verdict::False401 => tally.false_401 += 1,
            Verdict::InvalidAccepted => tally.invalid_accepted += 1,
            Verdict::Error(_) => tally.errors += 1,
        }
        if !matches!(
            verdict,
            Verdict::Ok | Verdict::Refused | Verdict::Unverifiable
        ) && w.examples.len() < 5
        {
            w.examples.push(format!("{verdict:?}"));
        }
        w.latency_all.push(micros);
        if kind.local() {
            w.latency_local.push(micros);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, www: &str, retry_after: bool, body: &str) -> Answer {
        Answer {
            status,
            retry_after,
            www: www.into(),
            body: body.into(),
        }
    }

    const OK: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    const INVALID: &str = r#"Bearer error="invalid_token", resource_metadata="x""#;

    #[test]
    fn an_attacker_token_accepted_is_the_worst_verdict() {
        for k in [
            Kind::Tampered,
            Kind::Expired,
            Kind::ForgedKid,
            Kind::OpaqueInactive,
        ] {
            assert_eq!(
                classify(k, &answer(200, "", false, OK)),
                Verdict::InvalidAccepted
            );
            assert_eq!(
                classify(k, &answer(401, INVALID, false, "")),
                Verdict::Refused
            );
        }
        // Locally decided tokens have no excuse for a 503 or a 429.
        assert!(matches!(
            classify(Kind::Tampered, &answer(503, "", true, "")),
            Verdict::Error(_)
        ));
        assert_eq!(
            classify(Kind::ForgedKid, &answer(503, "", true, "")),
            Verdict::Refused
        );
        assert!(matches!(
            classify(Kind::ForgedKid, &answer(503, "", false, "")),
            Verdict::Error(_)
        ));
    }

    #[test]
    fn legitimate_requests_must_succeed() {
        assert_eq!(
            classify(Kind::NewToken, &answer(200, "", false, OK)),
            Verdict::Ok
        );
        assert_eq!(
            classify(Kind::NewToken, &answer(401, INVALID, false, "")),
            Verdict::False401
        );
        let tool_error = r#"{"result":{"isError":true}}"#;
        assert!(matches!(
            classify(Kind::ReusedCall, &answer(200, "", false, tool_error)),
            Verdict::Error(_)
        ));
        assert!(matches!(
            classify(Kind::Void, &answer(200, "", false, OK)),
            Verdict::Error(_)
        ));
        assert_eq!(
            classify(
                Kind::Void,
                &answer(200, "", false, r#"{"result":"Voided BIG-1."}"#)
            ),
            Verdict::Ok
        );
        // A cached key never excuses a 503.
        assert!(matches!(
            classify(Kind::NewToken, &answer(503, "", true, "")),
            Verdict::Error(_)
        ));
        assert_eq!(
            classify(Kind::OpaqueNew, &answer(503, "", true, "")),
            Verdict::Unverifiable
        );
        assert_eq!(
            classify(Kind::OpaqueReused, &answer(503, "", true, "")),
            Verdict::Unverifiable
        );
        assert!(matches!(
            classify(Kind::OpaqueReused, &answer(503, "", false, "")),
            Verdict::Error(_)
        ));
        assert_eq!(
            classify(Kind::FreshKey, &answer(503, "", true, "")),
            Verdict::Unverifiable
        );
    }

    #[test]
    fn step_up_and_challenge_shapes() {
        let www = r#"Bearer error="insufficient_scope", scope="invoices:read invoices:write""#;
        assert_eq!(
            classify(Kind::StepUp, &answer(403, www, false, "")),
            Verdict::Refused
        );
        assert!(matches!(
            classify(Kind::StepUp, &answer(403, "Bearer", false, "")),
            Verdict::Error(_)
        ));
        let challenge =
            r#"Bearer resource_metadata="http://x/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(
            classify(Kind::NoToken, &answer(401, challenge, false, "")),
            Verdict::Refused
        );
        assert!(matches!(
            classify(Kind::NoToken, &answer(401, INVALID, false, "")),
            Verdict::Error(_)
        ));
    }

    #[test]
    fn a_fresh_key_refused_after_its_first_success_is_counted() {
        let t = RecoveryTrack::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(10);
        t.record(t0, t0, &Verdict::Refused);
        assert_eq!(t.late_refusals.load(Ordering::SeqCst), 0);
        t.record(t0, t0 + Duration::from_millis(5), &Verdict::Ok);
        // Sent before the success was seen: not late.
        t.record(t0, later, &Verdict::Refused);
        assert_eq!(t.late_refusals.load(Ordering::SeqCst), 0);
        t.record(later, later, &Verdict::Refused);
        assert_eq!(t.late_refusals.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn quantiles() {
        let mut v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(quantile_ms(&mut v, 0.99), 99.0);
        assert_eq!(quantile_ms(&mut [], 0.99), 0.0);
    }
}
