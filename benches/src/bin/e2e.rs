//! End-to-end benchmarks over loopback h2c: every server in `connect_benches::servers` against the
//! same load generator, in one run, with ratios. Run it through `benches/run.sh`.
//!
//! ```text
//! e2e run [--quick|--full] [--servers a,b,..] [--only SUBSTR] [--out DIR]
//!         [--concurrency N] [--server-threads N] [--client-threads N] [--connections N] [--no-pin]
//!         [--generators h2load,ours]
//! e2e serve NAME [--threads N]      (used by `run`: one child process per server)
//! ```

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use connect_benches::h2load;
use connect_benches::load::{self, CallSpec, LoadResult, LoadShape, Protocol};
use connect_benches::process::{flag, ServerProcess};
use connect_benches::report::{self, Record, RunInfo};
use connect_benches::servers::{self, ServerKind};
use connect_benches::tonic_gen;
use connect_benches::workload;
use prost::Message as _;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("run") => run(&args[1..]),
        _ => {
            eprintln!("usage: e2e run [--quick|--full] [...] | e2e serve NAME [--threads N]");
            std::process::exit(2);
        }
    }
}

/// Child mode: serve until standard input closes.
fn serve(args: &[String]) -> Result<(), Error> {
    let name = args.first().ok_or("serve: missing server name")?;
    let kind = ServerKind::from_name(name).ok_or_else(|| format!("unknown server {name}"))?;
    let threads = flag(args, "--threads").map_or(Ok(1), str::parse)?;
    // Any runtime can wait on this: a plain thread watches standard input.
    let (closed, stdin_closed) = futures_channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = closed.send(());
    });
    let stop = async move {
        let _ = stdin_closed.await;
    };
    servers::serve(
        kind,
        threads,
        |addr| {
            println!("LISTENING {addr}");
        },
        stop,
    )
}

/// One benchmark scenario.
#[derive(Clone, Debug)]
struct Scenario {
    id: String,
    group: &'static str,
    spec: CallSpec,
    concurrency: usize,
    /// Response messages per call (for messages/s).
    messages_per_call: u64,
    check: Check,
}

/// What a correct answer contains.
#[derive(Clone, Copy, Debug)]
enum Check {
    Echo,
    Ingest,
    ServerStream(usize),
    ClientStream(usize),
}

fn scenarios() -> Vec<Scenario> {
    let echo = workload::echo_request_bytes();
    let ingest = workload::encode(&workload::ingest_request());
    let mut out = Vec::new();
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        for c in [16, 64, 256] {
            out.push(unary("echo", "Echo", protocol, &echo, c, Check::Echo));
        }
    }
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        for c in [64, 256] {
            out.push(unary(
                "ingest",
                "Ingest",
                protocol,
                &ingest,
                c,
                Check::Ingest,
            ));
        }
    }
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        for n in [10, 1000] {
            out.push(Scenario {
                id: format!("server stream {n} msgs {} c=16", protocol.name()),
                group: "stream",
                spec: CallSpec {
                    protocol,
                    method: "ServerStream",
                    streaming: true,
                    messages: vec![workload::stream_request_bytes(n as i32)],
                },
                concurrency: 16,
                messages_per_call: n as u64,
                check: Check::ServerStream(n),
            });
        }
    }
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        let n = 100;
        out.push(Scenario {
            id: format!("client stream {n} msgs {} c=16", protocol.name()),
            group: "stream",
            spec: CallSpec {
                protocol,
                method: "ClientStream",
                streaming: true,
                messages: vec![echo.clone(); n],
            },
            concurrency: 16,
            messages_per_call: n as u64,
            check: Check::ClientStream(n),
        });
    }
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        let mut s = unary("latency", "Echo", protocol, &echo, 1, Check::Echo);
        s.id = format!("echo {} c=1", protocol.name());
        out.push(s);
    }
    out
}

fn unary(
    group: &'static str,
    method: &'static str,
    protocol: Protocol,
    body: &Bytes,
    c: usize,
    check: Check,
) -> Scenario {
    Scenario {
        id: format!("{group} {} c={c}", protocol.name()),
        group,
        spec: CallSpec {
            protocol,
            method,
            streaming: false,
            messages: vec![body.clone()],
        },
        concurrency: c,
        messages_per_call: 1,
        check,
    }
}

/// Validates one answer in full; returns the body length every later answer must have.
fn validate(scenario: &Scenario, answer: &load::Answer) -> Result<usize, String> {
    let protocol = scenario.spec.protocol;
    if !answer.ok(protocol) {
        return Err(format!(
            "status {} headers {:?} trailers {:?} body {:?}",
            answer.status, answer.headers, answer.trailers, answer.body
        ));
    }
    let enveloped = protocol == Protocol::Grpc || scenario.spec.streaming;
    let messages: Vec<Bytes> = if enveloped {
        let frames = load::unframe(answer.body.clone());
        if protocol == Protocol::Connect {
            match frames.last() {
                Some((2, end)) if !end.windows(5).any(|w| w == b"error") => {}
                other => return Err(format!("bad Connect end of stream: {other:?}")),
            }
        }
        frames
            .into_iter()
            .filter(|(f, _)| *f == 0)
            .map(|(_, m)| m)
            .collect()
    } else {
        vec![answer.body.clone()]
    };
    let decode_err = |e: prost::DecodeError| e.to_string();
    match scenario.check {
        Check::Echo => {
            let m = tonic_gen::EchoResponse::decode(messages.first().cloned().unwrap_or_default())
                .map_err(decode_err)?;
            if m.message != workload::ECHO_MESSAGE || messages.len() != 1 {
                return Err(format!("wrong echo {m:?}"));
            }
        }
        Check::Ingest => {
            let m =
                tonic_gen::IngestResponse::decode(messages.first().cloned().unwrap_or_default())
                    .map_err(decode_err)?;
            let want = workload::ingest_response(&workload::ingest_request());
            if m.accepted != want.accepted || m.checksum != want.checksum {
                return Err(format!("wrong ingest answer {m:?}, want {want:?}"));
            }
        }
        Check::ServerStream(n) => {
            if messages.len() != n {
                return Err(format!("{} messages, want {n}", messages.len()));
            }
            let m = tonic_gen::EchoResponse::decode(messages[0].clone()).map_err(decode_err)?;
            if m.message != workload::ECHO_MESSAGE {
                return Err(format!("wrong stream message {m:?}"));
            }
        }
        Check::ClientStream(n) => {
            let m =
                tonic_gen::IngestResponse::decode(messages.first().cloned().unwrap_or_default())
                    .map_err(decode_err)?;
            if m.accepted != n as u64 || m.checksum != (n * workload::ECHO_MESSAGE.len()) as u64 {
                return Err(format!("wrong client-stream answer {m:?}"));
            }
        }
    }
    Ok(answer.body_len)
}

/// One server's figures for one scenario and generator: medians over the rounds.
fn record(
    scenario: &Scenario,
    server: ServerKind,
    generator: &'static str,
    rs: &[LoadResult],
) -> Record {
    let calls_per_s = median(
        rs.iter()
            .map(|r| r.calls as f64 / r.window.as_secs_f64())
            .collect(),
    )
    .unwrap_or(0.0);
    let cpu_per_call = median(
        rs.iter()
            .filter_map(|r| {
                let cpu = r.server_cpu?;
                (r.calls > 0).then(|| cpu.as_secs_f64() * 1e6 / r.calls as f64)
            })
            .collect(),
    );
    let cpu_load = median(
        rs.iter()
            .filter_map(|r| Some(r.server_cpu?.as_secs_f64() / r.window.as_secs_f64()))
            .collect(),
    );
    Record {
        scenario: scenario.id.clone(),
        group: scenario.group,
        server,
        generator,
        calls_per_s,
        messages_per_s: calls_per_s * scenario.messages_per_call as f64,
        p50_us: median(rs.iter().filter_map(|r| r.percentile(50.0)).collect()),
        p99_us: median(rs.iter().filter_map(|r| r.percentile(99.0)).collect()),
        server_cpu_us_per_call: cpu_per_call,
        server_cpu_load: cpu_load,
        errors: rs.iter().map(|r| r.errors).sum(),
        first_error: rs.iter().find_map(|r| r.first_error.clone()),
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn shell(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = shell("uname", &["-sr"]).unwrap_or_default();
    let rustc = shell("rustc", &["--version"]).unwrap_or_default();
    format!("{model}, {cores} cores; {kernel}; {rustc}")
}

fn run(args: &[String]) -> Result<(), Error> {
    let full = args.iter().any(|a| a == "--full");
    let (warmup, measure, rounds) = if full {
        (Duration::from_millis(1000), Duration::from_millis(4000), 3)
    } else {
        (Duration::from_millis(500), Duration::from_millis(1500), 1)
    };
    let server_threads: usize = flag(args, "--server-threads").map_or(Ok(1), str::parse)?;
    let client_threads: usize = flag(args, "--client-threads").map_or(Ok(1), str::parse)?;
    let connections: usize = flag(args, "--connections").map_or(Ok(4), str::parse)?;
    let out_dir = PathBuf::from(flag(args, "--out").unwrap_or(if full {
        "benches/results"
    } else {
        "benches/results/quick"
    }));
    let only = flag(args, "--only");
    let concurrency: Option<usize> = flag(args, "--concurrency").map(str::parse).transpose()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin =
        !args.iter().any(|a| a == "--no-pin") && cores >= 2 && shell("taskset", &["-V"]).is_some();
    let wanted: Vec<ServerKind> = match flag(args, "--servers") {
        Some(list) => list
            .split(',')
            .map(|n| ServerKind::from_name(n).ok_or_else(|| format!("unknown server {n}")))
            .collect::<Result<_, _>>()?,
        None => ServerKind::ALL.to_vec(),
    };
    // Load generators: h2load (the figures the README quotes) and ours, each over every scenario.
    let mut generators: Vec<&'static str> = match flag(args, "--generators") {
        Some(list) => list
            .split(',')
            .map(|g| match g {
                "h2load" => Ok("h2load"),
                "ours" => Ok("ours"),
                other => Err(format!("unknown load generator {other} (h2load, ours)")),
            })
            .collect::<Result<_, _>>()?,
        None => vec!["h2load", "ours"],
    };
    let mut generator_notes = Vec::new();
    if generators.contains(&"h2load") {
        if h2load::available() {
            generator_notes.push(format!(
                "{} (h2c, pre-encoded request bodies from a file, one thread)",
                h2load::version().unwrap_or_else(|| "h2load".into())
            ));
        } else {
            generators.retain(|g| *g != "h2load");
            generator_notes.push(
                "h2load: not installed (Debian nghttp2-client; benches/run.sh installs it)".into(),
            );
        }
    }
    if generators.contains(&"ours") {
        generator_notes.push("ours (an h2 client, pre-encoded requests)".into());
    }
    if generators.is_empty() {
        return Err("no load generator to run".into());
    }
    let machine = machine();
    let ticks_per_s: f64 = shell("getconf", &["CLK_TCK"])
        .and_then(|s| s.parse().ok())
        .unwrap_or(100.0);

    // The load generator on CPU 0, every server on CPU 1.
    if pin {
        let _ = shell("taskset", &["-pc", "0", &std::process::id().to_string()]);
    }
    let mut unavailable = Vec::new();
    let mut procs = Vec::new();
    let exe = std::env::current_exe()?;
    for kind in wanted {
        if let Some(why) = kind.unavailable() {
            unavailable.push((kind.name().to_owned(), why.to_owned()));
            continue;
        }
        procs.push(ServerProcess::spawn(
            &exe,
            kind,
            server_threads,
            pin.then_some(1),
        )?);
    }
    let load_at_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let info = RunInfo {
        mode: if full { "full" } else { "quick" }.into(),
        date: shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        machine,
        load_at_start: load_at_start.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        setup: format!(
            "loopback h2c (prior knowledge); each server in its own process with {server_threads} tokio \
             worker thread(s){}; each load generator (below) in turn with {client_threads} thread(s){}; \
             {connections} connections (1 at c=1); warmup {:?}, \
             window {:?}, {rounds} round(s), median reported; release build",
            if pin { " pinned to CPU 1" } else { "" },
            if pin { " pinned to CPU 0" } else { "" },
            warmup,
            measure,
        ),
        unavailable,
        generators: generator_notes,
    };

    let runtime = if client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(client_threads)
            .enable_all()
            .build()?
    };
    let mut records = Vec::new();
    let scenarios: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| only.is_none_or(|o| s.id.contains(o)))
        .collect();
    for scenario in &scenarios {
        let targets: Vec<&ServerProcess> = procs
            .iter()
            .filter(|p| scenario.spec.protocol == Protocol::Grpc || p.kind.speaks_connect())
            .collect();
        let mut expected = Vec::new();
        for p in &targets {
            let answer = runtime.block_on(load::call_once(p.addr, &scenario.spec));
            let len = answer.and_then(|a| validate(scenario, &a));
            if let Err(e) = &len {
                eprintln!("{} on {}: invalid answer: {e}", scenario.id, p.kind.name());
            }
            expected.push(len.ok());
        }
        let shape = LoadShape {
            concurrency: concurrency.unwrap_or(scenario.concurrency),
            connections: if scenario.concurrency == 1 {
                1
            } else {
                connections
            },
            warmup,
            measure,
        };
        // results[generator][server]: one result per round.
        let mut results: Vec<Vec<Vec<LoadResult>>> = generators
            .iter()
            .map(|_| targets.iter().map(|_| Vec::new()).collect())
            .collect();
        for round in 0..rounds {
            for k in 0..targets.len() {
                // Rotate the order each round so that drifting background load hits everyone.
                let i = (k + round) % targets.len();
                let p = targets[i];
                let Some(len) = expected[i] else { continue };
                for (g, generator) in generators.iter().enumerate() {
                    let cpu = || p.cpu_time(ticks_per_s);
                    let result = match *generator {
                        "h2load" => {
                            h2load::run(p.addr, &scenario.spec, &shape, len, pin.then_some(0), cpu)
                        }
                        _ => runtime.block_on(load::run(p.addr, &scenario.spec, &shape, len, cpu)),
                    };
                    match result {
                        Ok(r) => {
                            eprintln!(
                                "{:<36} {:<12} {:<7} {:>10.0} calls/s  p50 {:>6.0} µs  p99 {:>6.0} µs{}",
                                scenario.id,
                                p.kind.name(),
                                generator,
                                r.calls as f64 / r.window.as_secs_f64(),
                                r.percentile(50.0).unwrap_or(0.0),
                                r.percentile(99.0).unwrap_or(0.0),
                                if r.errors > 0 {
                                    format!("  {} errors", r.errors)
                                } else {
                                    String::new()
                                }
                            );
                            results[g][i].push(r);
                        }
                        Err(e) => {
                            eprintln!("{} on {} ({generator}): {e}", scenario.id, p.kind.name())
                        }
                    }
                }
            }
        }
        for (g, generator) in generators.iter().enumerate() {
            for (i, p) in targets.iter().enumerate() {
                let rs = &results[g][i];
                if rs.is_empty() {
                    continue;
                }
                records.push(record(scenario, p.kind, generator, rs));
            }
        }
    }
    drop(procs);

    let markdown = report::markdown(&info, &records);
    let headline = report::headline(&records);
    println!("{markdown}");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join("latest.md"), &markdown)?;
    std::fs::write(
        out_dir.join("latest.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "info": info, "records": records }))?,
    )?;
    for (name, svg) in report::charts(&headline) {
        std::fs::write(out_dir.join(name), svg)?;
    }
    eprintln!("wrote {}", out_dir.display());
    Ok(())
}
