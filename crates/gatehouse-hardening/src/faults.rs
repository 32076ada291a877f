//! Authorization-server faults under load (issue 15 item 5): each fault for a bounded window
//! at `c` connections, then its recovery, with every answer judged.
//!
//! Targets, per phase: 0 invalid tokens accepted; 0 false `401` (a token whose key the server
//! holds, or that introspection would call active); `503 + Retry-After` for what cannot be
//! verified (a `503` without it, or any other answer, is an error); nothing the fault makes
//! unverifiable is accepted during it (no fetch can have succeeded); recovery — the first
//! acceptance of a request that needed the failing endpoint — within one refresh cooldown
//! (plus the fetch deadline) of the fault's end, and nothing refused after that; resident
//! memory bounded (huge documents are refused at the fetch limit, not read).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::load::{Kind, Load, RecoveryTrack, Window, mix, quantile_ms};
use crate::procstat;
use crate::soak::kind_table;
use crate::stack::{Stack, StackOptions};
use crate::tokens::Tokens;

/// How the fault runs go.
#[derive(Debug, Clone)]
pub(crate) struct FaultOptions {
    pub(crate) stack: StackOptions,
    pub(crate) conns: usize,
    /// How long each fault lasts.
    pub(crate) window: Duration,
    /// The delay of the slow introspection endpoint (under the 5 s fetch deadline).
    pub(crate) slow: Duration,
}

/// The server's fetch deadline (`fetch_timeout_seconds`, default 5).
const FETCH_DEADLINE: Duration = Duration::from_secs(5);
/// Resident memory may grow this much over the baseline phase, MB.
const RSS_HEADROOM_MB: f64 = 64.0;
/// Size of the huge documents, bytes (the server's fetch limit is 256 KiB).
const HUGE: usize = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    JwksDown,
    JwksHang,
    Rotation,
    IntrospectionDown,
    IntrospectionSlow,
    IntrospectionHang,
    Garbage,
    Huge,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::None => "baseline (no fault)",
            Fault::JwksDown => "JWKS endpoint down (503)",
            Fault::JwksHang => "JWKS endpoint hanging",
            Fault::Rotation => "key rotation (new kid published, old removed)",
            Fault::IntrospectionDown => "introspection down (503)",
            Fault::IntrospectionSlow => "introspection slow",
            Fault::IntrospectionHang => "introspection hanging",
            Fault::Garbage => "JWKS and introspection answer garbage",
            Fault::Huge => "JWKS and introspection answer 32 MiB documents",
        }
    }

    /// A JWT under a key published during the fault can be verified only once the JWKS
    /// answers again.
    fn publishes_key(self) -> bool {
        matches!(
            self,
            Fault::JwksDown | Fault::JwksHang | Fault::Rotation | Fault::Garbage | Fault::Huge
        )
    }

    /// New opaque tokens cannot be verified while it lasts.
    fn blocks_introspection(self) -> bool {
        matches!(
            self,
            Fault::IntrospectionDown | Fault::IntrospectionHang | Fault::Garbage | Fault::Huge
        )
    }

    /// A JWT under the new key cannot be verified while it lasts (a rotation can be, once
    /// the cooldown allows the fetch).
    fn blocks_jwks(self) -> bool {
        self.publishes_key() && self != Fault::Rotation
    }
}

fn base_mix(fresh_key: bool, rotation: bool) -> Arc<Vec<Kind>> {
    let mut w = vec![
        (Kind::OpaqueReused, 8),
        (Kind::OpaqueNew, 8),
        (Kind::ForgedKid, 6),
        (Kind::OpaqueInactive, 6),
        (Kind::NoToken, 8),
    ];
    // During a rotation the old key leaves the issuer's JWKS: every token under it — the
    // reused ones included, once their cached verification lapses or is evicted — is then
    // rightly refused, so the legitimate traffic is the new key's (`FreshKey`), and a token
    // forged under the old key is no longer one the server decides alone. The reused tokens
    // return, re-minted under the new key, once the server holds it.
    if !rotation {
        w.extend([
            (Kind::ReusedCall, 18),
            (Kind::Void, 4),
            (Kind::StepUp, 2),
            (Kind::NewToken, 20),
            (Kind::Tampered, 8),
            (Kind::Expired, 4),
            (Kind::WrongAudience, 4),
        ]);
    }
    if fresh_key {
        w.push((Kind::FreshKey, if rotation { 30 } else { 10 }));
    }
    mix(&w)
}

struct PhaseResult {
    fault: Fault,
    during: Window,
    after: Window,
    recovery_jwks: Option<Duration>,
    recovery_introspection: Option<Duration>,
    late: u64,
    rss_mb: f64,
    p99_local_ms: f64,
    problems: Vec<String>,
}

/// Runs every fault in turn on one server; returns the report (markdown) and whether every
/// target held.
pub(crate) async fn run(o: &FaultOptions) -> anyhow::Result<(String, bool)> {
    let stack = Stack::start(&o.stack).await?;
    let tokens = Tokens::new(stack.auth.clone());
    let load = Load::start(
        &stack.url,
        tokens.clone(),
        o.stack.invoices,
        o.conns,
        base_mix(false, false),
    )?;
    let cooldown = Duration::from_secs(o.stack.cooldown_seconds);
    // Recovery must come within one cooldown (the next refresh the server allows) plus one
    // fetch deadline (a fetch under way when the fault ended) and a second of slack.
    let recovery_bound = cooldown + FETCH_DEADLINE + Duration::from_secs(1);
    let huge_jwks = huge_document(
        r#"{"keys":["#,
        r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"},"#,
    );
    let huge_introspection = huge_document(
        &format!(
            r#"{{"active":true,"iss":"{}","aud":"{}","sub":"mallory","scope":"invoices:read","tenant":"acme","pad":["#,
            stack.auth.issuer(),
            stack.auth.audience()
        ),
        r#""xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","#,
    );
    let mut results = Vec::new();
    let mut baseline_rss = 0.0;
    let mut alive = true;
    for fault in [
        Fault::None,
        Fault::JwksDown,
        Fault::JwksHang,
        Fault::Rotation,
        Fault::IntrospectionDown,
        Fault::IntrospectionSlow,
        Fault::IntrospectionHang,
        Fault::Garbage,
        Fault::Huge,
    ] {
        eprintln!("faults: {}", fault.name());
        let auth = tokens.auth();
        let _ = load.drain();
        match fault {
            Fault::None | Fault::Rotation => {}
            Fault::JwksDown => auth.set_jwks_down(true),
            Fault::JwksHang => auth.set_jwks_hang(true),
            Fault::IntrospectionDown => auth.set_introspection_down(true),
            Fault::IntrospectionSlow => auth.set_introspection_delay(o.slow),
            Fault::IntrospectionHang => auth.set_introspection_hang(true),
            Fault::Garbage => {
                auth.set_jwks_raw(Some("<html><body>502 Bad Gateway</body></html>"));
                auth.set_introspection_raw(Some((200, "{\"active\": tru")));
            }
            Fault::Huge => {
                auth.set_jwks_raw(Some(&huge_jwks));
                auth.set_introspection_raw(Some((200, &huge_introspection)));
            }
        }
        // The new key is published only once the JWKS is failing, so that no refresh can
        // have fetched it before; only requests sent from here on count.
        if fault.publishes_key() {
            let kid = tokens.publish_fresh();
            eprintln!("faults: the issuer published {kid}");
        }
        if fault == Fault::Rotation {
            tokens.retire_all_but_fresh();
        }
        load.fresh.reset();
        load.opaque.reset();
        load.set_mix(base_mix(fault.publishes_key(), fault == Fault::Rotation));
        let fault_started = Instant::now();
        tokio::time::sleep(o.window).await;
        let mut during = load.drain();
        // What the fault blocked must not have been accepted while it lasted.
        let jwks_accepted_during = load.fresh.first_ok().is_some();
        let introspection_accepted_during = load.opaque.first_ok().is_some();
        // The rotation is not a fault that ends: recovery counts from its start.
        let restored = if fault == Fault::Rotation {
            fault_started
        } else {
            load.fresh.reset();
            load.opaque.reset();
            Instant::now()
        };
        match fault {
            Fault::None | Fault::Rotation => {}
            Fault::JwksDown => auth.set_jwks_down(false),
            Fault::JwksHang => auth.set_jwks_hang(false),
            Fault::IntrospectionDown => auth.set_introspection_down(false),
            Fault::IntrospectionSlow => auth.set_introspection_delay(Duration::ZERO),
            Fault::IntrospectionHang => auth.set_introspection_hang(false),
            Fault::Garbage | Fault::Huge => {
                auth.set_jwks_raw(None);
                auth.set_introspection_raw(None);
            }
        }
        // Recovery: keep the load on until every kind that needed the failing endpoint has
        // been accepted again (bounded), then a settling period that must see no refusal.
        let need_jwks = fault.publishes_key();
        let need_introspection = fault.blocks_introspection() || fault == Fault::IntrospectionSlow;
        let deadline = restored + recovery_bound + Duration::from_secs(10);
        while Instant::now() < deadline
            && ((need_jwks && load.fresh.first_ok().is_none())
                || (need_introspection && load.opaque.first_ok().is_none()))
        {
            // A measurement loop, not synchronisation: the clients run on their own.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(o.window / 4).await;
        let after = load.drain();
        let since = |t: &RecoveryTrack| t.first_ok().map(|f| f.saturating_duration_since(restored));
        let recovery_jwks = need_jwks.then(|| since(&load.fresh)).flatten();
        let recovery_introspection = need_introspection.then(|| since(&load.opaque)).flatten();
        let late = load.fresh.late_refusals.load(Ordering::SeqCst)
            + load.opaque.late_refusals.load(Ordering::SeqCst);
        if fault.publishes_key() {
            tokens.adopt_fresh();
        }
        let rss_mb = match procstat::sample(stack.pid) {
            Ok(p) => p.rss_mb,
            Err(e) => {
                eprintln!("faults: the server is gone: {e}");
                alive = false;
                0.0
            }
        };
        if fault == Fault::None {
            baseline_rss = rss_mb;
        }
        let mut problems = Vec::new();
        for (what, w) in [("during", &during), ("after", &after)] {
            let t = w.total();
            if t.violations() > 0 {
                problems.push(format!(
                    "{} violating answers {what} ({} false 401, {} invalid accepted, {} other)",
                    t.violations(),
                    t.false_401,
                    t.invalid_accepted,
                    t.errors
                ));
            }
        }
        if fault.blocks_jwks() && jwks_accepted_during {
            problems.push("a token under the unfetchable key was accepted".into());
        }
        if fault.blocks_introspection() && introspection_accepted_during {
            problems.push("a new opaque token was accepted while introspection failed".into());
        }
        for (what, needed, took) in [
            ("JWKS", need_jwks, recovery_jwks),
            ("introspection", need_introspection, recovery_introspection),
        ] {
            match (needed, took) {
                (true, None) => problems.push(format!("{what}: no recovery")),
                (true, Some(d)) if d > recovery_bound => problems.push(format!(
                    "{what}: recovered in {:.1} s, over {:.0} s",
                    d.as_secs_f64(),
                    recovery_bound.as_secs_f64()
                )),
                _ => {}
            }
        }
        if late > 0 {
            problems.push(format!("{late} refused after the first acceptance"));
        }
        if rss_mb > baseline_rss + RSS_HEADROOM_MB {
            problems.push(format!(
                "RSS {rss_mb:.1} MB, over the baseline {baseline_rss:.1} MB + {RSS_HEADROOM_MB} MB"
            ));
        }
        if !alive {
            problems.push("the server died".into());
        }
        let p99_local_ms = quantile_ms(&mut during.latency_local, 0.99);
        eprintln!(
            "faults: {}: {} requests, p99 local {p99_local_ms:.2} ms, problems {problems:?}",
            fault.name(),
            during.total().sent + after.total().sent
        );
        results.push(PhaseResult {
            fault,
            during,
            after,
            recovery_jwks,
            recovery_introspection,
            late,
            rss_mb,
            p99_local_ms,
            problems,
        });
        if !alive {
            break;
        }
    }
    let _ = load.stop().await;
    let (errors, error_examples) = stack.log_lines("ERROR");
    stack.stop().await;
    Ok(report(o, &results, errors, &error_examples))
}

fn huge_document(head: &str, item: &str) -> String {
    let mut s = String::with_capacity(HUGE + 64);
    s.push_str(head);
    while s.len() < HUGE {
        s.push_str(item);
    }
    s.pop(); // the last comma
    s.push_str("]}");
    s
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn report(
    o: &FaultOptions,
    results: &[PhaseResult],
    log_errors: usize,
    log_examples: &[String],
) -> (String, bool) {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Faults: c={}, each fault {} s, then its recovery and {} s of settling; refresh cooldown \
         {} s; server log: {log_errors} error lines.\n",
        o.conns,
        o.window.as_secs(),
        (o.window / 4).as_secs_f64(),
        o.stack.cooldown_seconds
    );
    s.push_str(
        "| fault | requests | accepted | refused as required | 503 + Retry-After | false 401 | invalid accepted | other errors | p99 ms (local) | JWKS recovery s | introspection recovery s | refused after recovery | RSS MB | result |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    let mut pass = true;
    for r in results {
        let mut t = r.during.total();
        t.add(&r.after.total());
        pass &= r.problems.is_empty();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {:.1} | {} |",
            r.fault.name(),
            t.sent,
            t.ok,
            t.refused,
            t.unverifiable,
            t.false_401,
            t.invalid_accepted,
            t.errors,
            r.p99_local_ms,
            secs(r.recovery_jwks),
            secs(r.recovery_introspection),
            r.late,
            r.rss_mb,
            if r.problems.is_empty() {
                "pass".to_owned()
            } else {
                format!("**{}**", r.problems.join("; "))
            }
        );
    }
    pass &= log_errors == 0;
    for r in results {
        let _ = writeln!(s, "\n#### {}\n\nDuring the fault:\n", r.fault.name());
        s.push_str(&kind_table(&r.during));
        for e in &r.during.examples {
            let _ = writeln!(s, "\n    {e}");
        }
        s.push_str("\nRecovery and settling:\n\n");
        s.push_str(&kind_table(&r.after));
        for e in &r.after.examples {
            let _ = writeln!(s, "\n    {e}");
        }
    }
    for e in log_examples {
        let _ = writeln!(s, "\n    {e}");
    }
    (s, pass)
}
