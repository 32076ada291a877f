//! `gatehouse-hardening soak|faults [--short] [--gatehouse BIN] [--out FILE] [...]`
//!
//! The long runs of issue 15 against the real `gatehouse` binary (see `hardening/README.md`):
//!
//! - `soak`: mixed traffic at `--conns` (64) for `--seconds` (1800), sampled every
//!   `--interval` (10) s after a `--warmup` (120 s): 0 violating answers, RSS flat (±5 %), no
//!   descriptor growth;
//! - `faults`: the authorization server failing in eight ways, each for `--window` (60) s at
//!   `--conns` (32): 0 invalid tokens accepted, 0 false 401, 503 + Retry-After for what cannot
//!   be verified, recovery within one refresh cooldown, bounded memory.
//!
//! - `failover`: `deploy/up` (three replicas behind nginx on PostgreSQL and Redis) at `--conns`
//!   (32); one replica `SIGKILL`ed, and without `--short` PostgreSQL restarted and Redis
//!   stopped, `--settle` (30) s apart: every void a client saw succeed exists exactly once,
//!   errors only for requests in flight, recovery without a restart, audit loss counted.
//!
//! - `scale`: requests/s and p99 through nginx with 1, 2 and 3 replicas (`--seconds` 20 each).
//!
//! `--short` is the few-seconds form `scripts/test` runs. The exit status is 0 only when
//! every target held; the report (markdown) goes to stdout and, with `--out`, to a file.
//! Everything binds 127.0.0.1 (and sends from 127.0.0.2) on ephemeral ports, and every phase
//! is bounded in time.

mod failover;
mod faults;
mod load;
mod procstat;
mod soak;
mod stack;
mod tokens;

use std::path::PathBuf;
use std::time::Duration;

use gatehouse_bench::args;

use crate::stack::StackOptions;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("gatehouse-hardening: a target was missed (see the report)");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("gatehouse-hardening: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let what = std::env::args().nth(1).unwrap_or_default();
    let short = std::env::args().any(|a| a == "--short");
    let bin = PathBuf::from(args::get("gatehouse").unwrap_or_else(default_bin));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (report, pass) = rt.block_on(async {
        match what.as_str() {
            "soak" => {
                let o = soak::SoakOptions {
                    stack: StackOptions {
                        bin,
                        invoices: args::parsed("invoices", if short { 3_000 } else { 300_000 })?,
                        cooldown_seconds: 30,
                    },
                    conns: args::parsed("conns", if short { 16 } else { 64 })?,
                    duration: Duration::from_secs(args::parsed(
                        "seconds",
                        if short { 6 } else { 1800 },
                    )?),
                    interval: Duration::from_secs(args::parsed(
                        "interval",
                        if short { 2 } else { 10 },
                    )?),
                    warmup: Duration::from_secs(args::parsed(
                        "warmup",
                        if short { 2 } else { 120 },
                    )?),
                    check_flat: !short,
                };
                soak::run(&o).await
            }
            "faults" => {
                let o = faults::FaultOptions {
                    stack: StackOptions {
                        bin,
                        invoices: args::parsed("invoices", 30_000)?,
                        // The short form shortens the cooldown so that recovery fits in seconds.
                        cooldown_seconds: args::parsed("cooldown", if short { 1 } else { 30 })?,
                    },
                    conns: args::parsed("conns", if short { 16 } else { 32 })?,
                    window: Duration::from_secs(args::parsed(
                        "window",
                        if short { 3 } else { 60 },
                    )?),
                    slow: Duration::from_millis(args::parsed("slow-ms", 2000)?),
                };
                faults::run(&o).await
            }
            "failover" | "scale" => {
                let bin_dir = bin
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), PathBuf::from);
                let o = failover::FailoverOptions {
                    bin_dir,
                    deploy: PathBuf::from(args::get("deploy").unwrap_or_else(|| "deploy/up".into())),
                    pg_url: args::get("pg-url").unwrap_or_else(|| {
                        "postgres://postgres@127.0.0.1:5432/test".into()
                    }),
                    conns: args::parsed("conns", 32)?,
                    invoices: args::parsed("invoices", if short { 5_000 } else { 50_000 })?,
                    settle: Duration::from_secs(args::parsed(
                        "settle",
                        if short { 8 } else { 30 },
                    )?),
                    infrastructure: !short,
                };
                if what == "scale" {
                    let seconds = Duration::from_secs(args::parsed("seconds", 20)?);
                    failover::scale(&o, seconds).await
                } else {
                    failover::run(&o).await
                }
            }
            other => {
                anyhow::bail!(
                    "usage: gatehouse-hardening soak|faults|failover|scale [--short] (not {other:?})"
                )
            }
        }
    })?;
    println!("{report}");
    if let Some(out) = args::get("out") {
        std::fs::write(&out, &report)?;
    }
    Ok(pass)
}

/// `gatehouse` next to this binary (the same cargo profile), else on `PATH`.
fn default_bin() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("gatehouse")))
        .filter(|p| p.exists())
        .map_or_else(|| "gatehouse".into(), |p| p.display().to_string())
}
