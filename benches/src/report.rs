//! Results of an end-to-end run: the markdown table with ratios, the target check and SVG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::servers::ServerKind;

/// One server's figures for one scenario (medians over rounds).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Record {
    /// Scenario id, e.g. `echo gRPC c=64`.
    pub scenario: String,
    /// Scenario group: `echo`, `ingest`, `stream`, `latency`.
    pub group: &'static str,
    /// The server.
    pub server: ServerKind,
    /// The load generator: `h2load` or `ours`.
    pub generator: &'static str,
    /// Successful calls per second.
    pub calls_per_s: f64,
    /// Messages per second (calls × messages per call), for streams.
    pub messages_per_s: f64,
    /// Median latency, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// Server CPU time per call, µs.
    pub server_cpu_us_per_call: Option<f64>,
    /// Server CPU use during the window (1.0 = one core busy).
    pub server_cpu_load: Option<f64>,
    /// Failed calls.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

/// How the run was made, for the report's header.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunInfo {
    /// `quick` or `full`.
    pub mode: String,
    /// When (UTC, from `date`).
    pub date: String,
    /// CPU model and count, kernel, rustc.
    pub machine: String,
    /// Load average when the run started: other users of the machine.
    pub load_at_start: String,
    /// Threads, pinning, durations, connections.
    pub setup: String,
    /// Servers that could not run, with the reason.
    pub unavailable: Vec<(String, String)>,
    /// The load generators, headline first (`h2load nghttp2/…`, `ours`), and why one is missing.
    pub generators: Vec<String>,
}

/// Targets of issue 10: (group, min ratio) against a server.
const TARGETS: &[(&str, ServerKind, f64)] = &[
    ("echo", ServerKind::Connectrpc, 1.3),
    ("ingest", ServerKind::Connectrpc, 1.3),
    ("echo", ServerKind::Tonic, 1.5),
    ("ingest", ServerKind::Tonic, 1.5),
    ("echo", ServerKind::HyperFloor, 0.8),
];

fn servers_in(records: &[Record]) -> Vec<ServerKind> {
    let mut servers: Vec<ServerKind> = records.iter().map(|r| r.server).collect();
    servers.sort();
    servers.dedup();
    servers
}

fn scenarios_in(records: &[Record], pred: impl Fn(&Record) -> bool) -> Vec<&str> {
    let mut seen = Vec::new();
    for r in records.iter().filter(|r| pred(r)) {
        if !seen.contains(&r.scenario.as_str()) {
            seen.push(r.scenario.as_str());
        }
    }
    seen
}

type Table<'a> = BTreeMap<(&'a str, ServerKind), &'a Record>;

fn index(records: &[Record]) -> Table<'_> {
    records
        .iter()
        .map(|r| ((r.scenario.as_str(), r.server), r))
        .collect()
}

fn fmt_num(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio_cell(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

/// Ratio columns: each of our servers against each other server.
fn ratio_pairs(servers: &[ServerKind]) -> Vec<(ServerKind, ServerKind)> {
    let mut pairs = Vec::new();
    for &ours in servers.iter().filter(|s| s.is_ours()) {
        for &other in servers.iter().filter(|s| **s != ours) {
            pairs.push((ours, other));
        }
    }
    pairs
}

/// A markdown table of `value` per scenario and server, with ratio columns (`higher_is_better`
/// decides the direction, so that a ratio above 1 always means ours is better).
fn table(
    out: &mut String,
    records: &[Record],
    scenarios: &[&str],
    value: impl Fn(&Record) -> Option<f64>,
    fmt: impl Fn(&Record) -> String,
    higher_is_better: bool,
) {
    let servers = servers_in(records);
    let idx = index(records);
    let pairs = ratio_pairs(&servers);
    let _ = write!(out, "| scenario |");
    for s in &servers {
        let _ = write!(out, " {} |", s.name());
    }
    for (a, b) in &pairs {
        let _ = write!(out, " {} vs {} |", a.name(), b.name());
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|{}", "---:|".repeat(servers.len() + pairs.len()));
    for sc in scenarios {
        let _ = write!(out, "| {sc} |");
        for s in &servers {
            let cell = idx.get(&(*sc, *s)).map_or("–".to_owned(), |r| {
                let mut c = fmt(r);
                if r.errors > 0 {
                    let _ = write!(c, " ⚠{} err", r.errors);
                }
                c
            });
            let _ = write!(out, " {cell} |");
        }
        for (a, b) in &pairs {
            let va = idx.get(&(*sc, *a)).and_then(|r| value(r));
            let vb = idx.get(&(*sc, *b)).and_then(|r| value(r));
            let r = va
                .zip(vb)
                .filter(|(a, b)| *a > 0.0 && *b > 0.0)
                .map(|(a, b)| if higher_is_better { a / b } else { b / a });
            let _ = write!(out, " {} |", ratio_cell(r));
        }
        let _ = writeln!(out);
    }
}

/// The ratio of `ours` over `other` for a scenario's throughput.
fn throughput_ratio(
    idx: &Table<'_>,
    scenario: &str,
    ours: ServerKind,
    other: ServerKind,
) -> Option<f64> {
    let a = idx.get(&(scenario, ours))?.calls_per_s;
    let b = idx.get(&(scenario, other))?.calls_per_s;
    (a > 0.0 && b > 0.0).then(|| a / b)
}

/// The target check: one line per target and scenario.
pub fn targets(records: &[Record]) -> String {
    let idx = index(records);
    let mut out = String::new();
    let servers = servers_in(records);
    for ours in servers.iter().copied().filter(|s| s.is_ours()) {
        for (group, other, min) in TARGETS {
            let scenarios = scenarios_in(records, |r| {
                r.group == *group && (r.scenario.ends_with("c=64") || r.scenario.ends_with("c=256"))
            });
            for sc in scenarios {
                if let Some(r) = throughput_ratio(&idx, sc, ours, *other) {
                    let verdict = if r >= *min { "met" } else { "**not met**" };
                    let _ = writeln!(
                        out,
                        "- {sc}: {} vs {} = {r:.2}× (target ≥ {min}×): {verdict}",
                        ours.name(),
                        other.name()
                    );
                }
            }
        }
    }
    out
}

/// The markdown report: the run, then each load generator's tables (h2load's first: the figures
/// the README quotes), then the two generators side by side.
pub fn markdown(info: &RunInfo, records: &[Record]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# End-to-end benchmarks ({} run)\n", info.mode);
    let _ = writeln!(out, "- date: {}", info.date);
    let _ = writeln!(out, "- machine: {}", info.machine);
    let _ = writeln!(out, "- load average at start: {}", info.load_at_start);
    let _ = writeln!(out, "- setup: {}", info.setup);
    for generator in &info.generators {
        let _ = writeln!(out, "- load generator: {generator}");
    }
    for (s, why) in &info.unavailable {
        let _ = writeln!(out, "- not run: {s}: {why}");
    }
    let _ = writeln!(
        out,
        "\nRatios are `ours ÷ them` for throughput and `them ÷ ours` for latency and CPU, so above \
         1.00× means ours is better. All figures come from the same run.\n"
    );
    let generators = generators_in(records);
    for generator in &generators {
        let subset: Vec<Record> = records
            .iter()
            .filter(|r| r.generator == *generator)
            .cloned()
            .collect();
        let _ = writeln!(out, "# Load generator: {generator}\n");
        generator_sections(&mut out, &subset);
    }
    if generators.len() > 1 {
        side_by_side(&mut out, records, &generators);
    }
    out
}

/// The generators of `records`, h2load first.
fn generators_in(records: &[Record]) -> Vec<&'static str> {
    let mut generators: Vec<&'static str> = records.iter().map(|r| r.generator).collect();
    generators.sort_by_key(|g| (*g != "h2load", *g));
    generators.dedup();
    generators
}

/// The records the README's charts are drawn from: h2load's when there are any.
pub fn headline(records: &[Record]) -> Vec<Record> {
    let first = generators_in(records).first().copied();
    records
        .iter()
        .filter(|r| Some(r.generator) == first)
        .cloned()
        .collect()
}

/// Calls per second of each server under each generator, and how far the generators disagree.
fn side_by_side(out: &mut String, records: &[Record], generators: &[&'static str]) {
    let _ = writeln!(
        out,
        "# The generators side by side (calls/s; the last column is {} ÷ {})\n",
        generators[0], generators[1]
    );
    let _ = write!(out, "| scenario | server |");
    for g in generators {
        let _ = write!(out, " {g} |");
    }
    let _ = writeln!(out, " ratio |");
    let _ = writeln!(out, "|---|---|{}---:|", "---:|".repeat(generators.len()));
    for sc in scenarios_in(records, |_| true) {
        for server in servers_in(records) {
            let values: Vec<Option<f64>> = generators
                .iter()
                .map(|g| {
                    records
                        .iter()
                        .find(|r| r.scenario == sc && r.server == server && r.generator == *g)
                        .map(|r| r.calls_per_s)
                })
                .collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let _ = write!(out, "| {sc} | {} |", server.name());
            for v in &values {
                let _ = write!(out, " {} |", v.map_or("–".into(), fmt_num));
            }
            let ratio = values[0]
                .zip(values[1])
                .filter(|(a, b)| *a > 0.0 && *b > 0.0)
                .map(|(a, b)| a / b);
            let _ = writeln!(out, " {} |", ratio_cell(ratio));
        }
    }
}

/// One generator's tables: throughput, streams, latency, server CPU, targets, errors.
fn generator_sections(out: &mut String, records: &[Record]) {
    let _ = writeln!(out, "## Throughput (calls/s, higher is better)\n");
    let scenarios = scenarios_in(records, |r| r.group != "latency");
    table(
        out,
        records,
        &scenarios,
        |r| Some(r.calls_per_s),
        |r| fmt_num(r.calls_per_s),
        true,
    );
    let streams = scenarios_in(records, |r| r.group == "stream");
    if !streams.is_empty() {
        let _ = writeln!(out, "\n## Streams (messages/s, higher is better)\n");
        table(
            out,
            records,
            &streams,
            |r| Some(r.messages_per_s),
            |r| fmt_num(r.messages_per_s),
            true,
        );
    }
    let latency = scenarios_in(records, |r| r.group == "latency");
    if !latency.is_empty() {
        let _ = writeln!(
            out,
            "\n## Latency at concurrency 1 (µs, p50 / p99, lower is better; ratios on p50)\n"
        );
        table(
            out,
            records,
            &latency,
            |r| r.p50_us,
            |r| {
                format!(
                    "{:.0} / {:.0}",
                    r.p50_us.unwrap_or(0.0),
                    r.p99_us.unwrap_or(0.0)
                )
            },
            false,
        );
        let _ = writeln!(out, "\n### p99 ratios\n");
        table(
            out,
            records,
            &latency,
            |r| r.p99_us,
            |r| format!("{:.0}", r.p99_us.unwrap_or(0.0)),
            false,
        );
    }
    let _ = writeln!(
        out,
        "\n## Server CPU per call (µs, lower is better; in brackets the server's CPU load, 1.00 = \
         one core busy)\n\nLess sensitive to a noisy machine than throughput: it counts only the \
         server process's own CPU time.\n"
    );
    let all = scenarios_in(records, |_| true);
    table(
        out,
        records,
        &all,
        |r| r.server_cpu_us_per_call,
        |r| match (r.server_cpu_us_per_call, r.server_cpu_load) {
            (Some(c), Some(l)) => format!("{c:.1} ({l:.2})"),
            _ => "?".into(),
        },
        false,
    );
    let _ = writeln!(out, "\n## Targets (throughput at c=64 and c=256)\n");
    out.push_str(&targets(records));
    let errors: Vec<&Record> = records.iter().filter(|r| r.errors > 0).collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\n## Errors\n");
        for r in errors {
            let _ = writeln!(
                out,
                "- {} on {}: {} failed calls, first: {}",
                r.scenario,
                r.server.name(),
                r.errors,
                r.first_error.as_deref().unwrap_or("?")
            );
        }
    }
}

const COLORS: [(&str, ServerKind); 5] = [
    ("#1f77b4", ServerKind::OursTokio),
    ("#17becf", ServerKind::OursSmol),
    ("#ff7f0e", ServerKind::Tonic),
    ("#2ca02c", ServerKind::Connectrpc),
    ("#7f7f7f", ServerKind::HyperFloor),
];

fn color(s: ServerKind) -> &'static str {
    COLORS
        .iter()
        .find(|(_, k)| *k == s)
        .map_or("#000", |(c, _)| c)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal grouped bar chart: one group per scenario, one bar per server, labelled values.
pub fn bar_chart(
    title: &str,
    unit: &str,
    records: &[Record],
    scenarios: &[&str],
    value: impl Fn(&Record) -> Option<f64>,
) -> String {
    let servers = servers_in(records);
    let idx = index(records);
    let (bar_h, gap, label_w, plot_w, top) = (14.0, 12.0, 170.0, 520.0, 50.0);
    let group_h = bar_h * servers.len() as f64 + gap;
    let height = top + group_h * scenarios.len() as f64 + 30.0 + 20.0 * servers.len() as f64;
    let width = label_w + plot_w + 90.0;
    let max = scenarios
        .iter()
        .flat_map(|sc| {
            servers
                .iter()
                .filter_map(|s| idx.get(&(*sc, *s)).and_then(|r| value(r)))
        })
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r##"<text x="10" y="22" font-size="15" font-weight="bold">{}</text><text x="10" y="40" fill="#555">{}</text>"##,
        escape(title),
        escape(unit)
    );
    for (i, sc) in scenarios.iter().enumerate() {
        let y0 = top + group_h * i as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y0 + bar_h * servers.len() as f64 / 2.0 + 4.0,
            escape(sc)
        );
        for (j, s) in servers.iter().enumerate() {
            let Some(v) = idx.get(&(*sc, *s)).and_then(|r| value(r)) else {
                continue;
            };
            let y = y0 + bar_h * j as f64;
            let w = (v / max * plot_w).max(1.0);
            let _ = writeln!(
                svg,
                r#"<rect x="{label_w}" y="{y}" width="{w:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                bar_h - 2.0,
                color(*s),
                label_w + w + 4.0,
                y + bar_h - 4.0,
                fmt_num(v)
            );
        }
    }
    let legend_y = top + group_h * scenarios.len() as f64 + 10.0;
    for (j, s) in servers.iter().enumerate() {
        let y = legend_y + 20.0 * j as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{label_w}" y="{y}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            color(*s),
            label_w + 18.0,
            y + 10.0,
            s.name()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// All charts of a run: (file name, SVG).
pub fn charts(records: &[Record]) -> Vec<(&'static str, String)> {
    let mut charts = Vec::new();
    let echo = scenarios_in(records, |r| r.group == "echo");
    if !echo.is_empty() {
        charts.push((
            "echo.svg",
            bar_chart(
                "Echo (64-byte string), unary",
                "calls/s, higher is better",
                records,
                &echo,
                |r| Some(r.calls_per_s),
            ),
        ));
    }
    let ingest = scenarios_in(records, |r| r.group == "ingest");
    if !ingest.is_empty() {
        charts.push((
            "ingest.svg",
            bar_chart(
                "Log ingest (50 records, ~15 KB), unary",
                "calls/s, higher is better",
                records,
                &ingest,
                |r| Some(r.calls_per_s),
            ),
        ));
    }
    let streams = scenarios_in(records, |r| r.group == "stream");
    if !streams.is_empty() {
        charts.push((
            "streams.svg",
            bar_chart(
                "Streaming",
                "messages/s, higher is better",
                records,
                &streams,
                |r| Some(r.messages_per_s),
            ),
        ));
    }
    let latency = scenarios_in(records, |r| r.group == "latency");
    if !latency.is_empty() {
        let mut lat = Vec::new();
        for r in records.iter().filter(|r| r.group == "latency") {
            for (suffix, v) in [("p50", r.p50_us), ("p99", r.p99_us)] {
                let mut r = r.clone();
                r.scenario = format!("{} {suffix}", r.scenario);
                r.calls_per_s = v.unwrap_or(0.0);
                lat.push(r);
            }
        }
        let names = scenarios_in(&lat, |_| true);
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        charts.push((
            "latency.svg",
            bar_chart(
                "Latency at concurrency 1",
                "µs, lower is better",
                &lat,
                &names,
                |r| Some(r.calls_per_s),
            ),
        ));
    }
    charts
}
