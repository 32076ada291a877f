//! `bench-chart --rows FILE [--gateway-rows FILE] --out FILE.svg [--conns 32]`: draws
//! `bench/run`'s rows (its tab-separated files: server, scenario, conns, req/s, p50, p99,
//! errors, non-2xx, CPU µs/req, peak RSS, …) as an SVG: requests/s and CPU per request for each
//! row at one concurrency, side by side, on log scales (the rows span four orders of
//! magnitude, from a Python proxy to a bare axum server), each bar labelled with its value.

use std::fmt::Write as _;

use gatehouse_bench::args;

struct Row {
    label: String,
    rps: f64,
    cpu: f64,
}

fn read_rows(path: &str, conns: &str) -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 10 || f[2] != conns {
            continue;
        }
        let (Ok(rps), Ok(cpu)) = (f[3].parse::<f64>(), f[8].parse::<f64>()) else {
            continue;
        };
        rows.push(Row {
            label: format!("{} — {}", f[0], f[1]),
            rps,
            cpu,
        });
    }
    Ok(rows)
}

/// `&`, `<`, `>` and quotes escaped for SVG text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Width of a bar for `v` on a log scale from `lo` to `hi` over `width` pixels.
fn bar(v: f64, lo: f64, hi: f64, width: f64) -> f64 {
    if v <= 0.0 {
        return 0.0;
    }
    ((v.log10() - lo.log10()) / (hi.log10() - lo.log10())).clamp(0.02, 1.0) * width
}

fn main() -> anyhow::Result<()> {
    let conns = args::get("conns").unwrap_or_else(|| "32".into());
    let mut rows = read_rows(&args::required("rows")?, &conns)?;
    if let Some(g) = args::get("gateway-rows") {
        rows.extend(read_rows(&g, &conns)?);
    }
    let out = args::required("out")?;
    anyhow::ensure!(!rows.is_empty(), "no rows at c={conns}");

    let (label_w, panel_w, row_h, top) = (430.0, 330.0, 22.0, 56.0);
    let height = top + row_h * rows.len() as f64 + 30.0;
    let width = label_w + 2.0 * panel_w + 60.0;
    let decade = |v: f64, up: bool| {
        let e = v.log10();
        10f64.powf(if up { e.ceil() } else { e.floor() })
    };
    let max_rps = rows.iter().map(|r| r.rps).fold(1.0, f64::max);
    let min_rps = rows.iter().map(|r| r.rps).fold(f64::MAX, f64::min).max(1.0);
    let max_cpu = rows.iter().map(|r| r.cpu).fold(1.0, f64::max);
    let min_cpu = rows.iter().map(|r| r.cpu).fold(f64::MAX, f64::min).max(0.1);
    let (rps_lo, rps_hi) = (decade(min_rps, false) / 2.0, decade(max_rps, true));
    let (cpu_lo, cpu_hi) = (decade(min_cpu, false) / 2.0, decade(max_cpu, true));

    let mut svg = String::new();
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    )?;
    writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="15" font-weight="bold">bench/run, c={conns}, one core per server (log scales)</text>"#
    )?;
    let x_rps = label_w;
    let x_cpu = label_w + panel_w + 40.0;
    writeln!(
        svg,
        r#"<text x="{x_rps}" y="44" font-weight="bold">requests/s (more is better)</text><text x="{x_cpu}" y="44" font-weight="bold">CPU µs per request (less is better)</text>"#
    )?;
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let w1 = bar(r.rps, rps_lo, rps_hi, panel_w - 70.0);
        let w2 = bar(r.cpu, cpu_lo, cpu_hi, panel_w - 70.0);
        let fill = if r.label.starts_with("gatehouse") {
            "#2b6cb0"
        } else {
            "#a0aec0"
        };
        writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 14.0,
            esc(&r.label)
        )?;
        writeln!(
            svg,
            r#"<rect x="{x_rps}" y="{}" width="{w1:.1}" height="{}" fill="{fill}"/><text x="{}" y="{}">{:.0}</text>"#,
            y + 3.0,
            row_h - 6.0,
            x_rps + w1 + 4.0,
            y + 14.0,
            r.rps
        )?;
        writeln!(
            svg,
            r#"<rect x="{x_cpu}" y="{}" width="{w2:.1}" height="{}" fill="{fill}"/><text x="{}" y="{}">{:.1}</text>"#,
            y + 3.0,
            row_h - 6.0,
            x_cpu + w2 + 4.0,
            y + 14.0,
            r.cpu
        )?;
    }
    writeln!(svg, "</svg>")?;
    std::fs::write(&out, svg)?;
    eprintln!("chart: {} rows at c={conns} → {out}", rows.len());
    Ok(())
}
