//! The same scenarios driven by h2load (nghttp2's HTTP/2 load generator, Debian `nghttp2-client`):
//! a standard, third-party load generator, so that no figure depends on our own client alone.
//!
//! h2load sends the pre-encoded request body of a scenario from a file, with the protocol's headers,
//! over `connections` h2c connections with `concurrency / connections` streams each, for a warm-up
//! and a measurement window, and reports what it saw; its per-request log gives the latencies of the
//! window. h2load only knows HTTP statuses, so each run starts with a fixed number of calls whose
//! response bytes must add up to the correct answer's length times the calls (a gRPC error is a 200
//! with a short body, so it shows there); the timed run then counts 2xx answers.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::load::{CallSpec, LoadResult, LoadShape, Protocol};

/// Whether `h2load` is on the path.
pub fn available() -> bool {
    Command::new("h2load")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The version line (`h2load nghttp2/1.52.0`), for the report.
pub fn version() -> Option<String> {
    let out = Command::new("h2load").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_owned())
}

/// The request body of `spec` as sent on the wire.
fn body(spec: &CallSpec) -> Vec<u8> {
    let enveloped = spec.protocol == Protocol::Grpc || spec.streaming;
    let mut out = Vec::new();
    for message in &spec.messages {
        if enveloped {
            out.push(0);
            out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(message);
    }
    out
}

fn headers(spec: &CallSpec) -> Vec<&'static str> {
    match (spec.protocol, spec.streaming) {
        (Protocol::Grpc, _) => vec!["content-type: application/grpc", "te: trailers"],
        (Protocol::Connect, false) => {
            vec![
                "content-type: application/proto",
                "connect-protocol-version: 1",
            ]
        }
        (Protocol::Connect, true) => vec![
            "content-type: application/connect+proto",
            "connect-protocol-version: 1",
        ],
    }
}

/// The number before `label` in h2load's summary, e.g. `93518 succeeded` → 93518.
fn count_before(text: &str, label: &str) -> Option<u64> {
    let at = text.find(label)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

/// The byte count in brackets before ` data` on the `traffic:` line.
fn data_bytes(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("traffic:"))?;
    let before = &line[..line.find(" data")?];
    let open = before.rfind('(')?;
    before[open + 1..before.rfind(')')?].parse().ok()
}

fn epoch_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Runs `spec` at `shape` against `addr` with h2load (pinned to `cpu` when given). `expected_len`
/// is the body length of a correct answer; `server_cpu` reads the server's CPU time.
pub fn run(
    addr: SocketAddr,
    spec: &CallSpec,
    shape: &LoadShape,
    expected_len: usize,
    cpu: Option<usize>,
    server_cpu: impl Fn() -> Option<Duration>,
) -> Result<LoadResult, String> {
    let dir = std::env::temp_dir().join(format!("h2load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let body_path = dir.join("body");
    let log_path = dir.join("log");
    std::fs::File::create(&body_path)
        .and_then(|mut f| f.write_all(&body(spec)))
        .map_err(|e| format!("writing the request body: {e}"))?;
    let connections = shape.connections.max(1).min(shape.concurrency.max(1));
    let streams = shape.concurrency.max(1).div_ceil(connections);
    let base = |cpu: Option<usize>| {
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string(), "h2load"]);
                c
            }
            None => Command::new("h2load"),
        };
        command
            .arg(format!("--clients={connections}"))
            .arg(format!("--max-concurrent-streams={streams}"))
            .arg("--threads=1")
            .arg(format!("--data={}", body_path.display()));
        for header in headers(spec) {
            command.arg(format!("--header={header}"));
        }
        command
    };
    let url = format!("http://{addr}/bench.v1.BenchService/{}", spec.method);

    // First a fixed number of calls, whose response bytes must add up exactly: h2load's own view
    // of the answers is correct (its timed run below counts response bytes of the warm-up too).
    let checked = 64 * connections as u64;
    let out = base(cpu)
        .arg(format!("--requests={checked}"))
        .arg(&url)
        .output()
        .map_err(|e| format!("starting h2load: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let succeeded = count_before(&text, " succeeded").unwrap_or(0);
    let data = data_bytes(&text).unwrap_or(0);
    if !out.status.success() || succeeded != checked || data != checked * expected_len as u64 {
        return Err(format!(
            "h2load's check run: {succeeded} of {checked} calls succeeded, {data} response body \
             bytes, want {} ({expected_len} each): {text}",
            checked * expected_len as u64
        ));
    }

    let mut command = base(cpu);
    command
        .arg(format!("--duration={}ms", shape.measure.as_millis()))
        .arg(format!("--warm-up-time={}ms", shape.warmup.as_millis()))
        .arg(format!("--log-file={}", log_path.display()))
        .arg(&url);
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting h2load: {e}"))?;
    // The window starts after the warm-up (h2load connects first: a few ms more).
    std::thread::sleep(shape.warmup);
    let window_start_us = epoch_us();
    let cpu_start = server_cpu();
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for h2load: {e}"))?;
    let cpu_end = server_cpu();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "h2load failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let done = count_before(&text, " done").ok_or_else(|| format!("no summary: {text}"))?;
    let succeeded = count_before(&text, " succeeded").unwrap_or(0);
    let failed = done.saturating_sub(succeeded);
    let first_error = (failed > 0).then(|| format!("{failed} non-2xx answers"));
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let mut latencies_us: Vec<u32> = log
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let start: u128 = cols.next()?.parse().ok()?;
            let status: u16 = cols.next()?.parse().ok()?;
            let took: u64 = cols.next()?.trim().parse().ok()?;
            (start >= window_start_us && (200..300).contains(&status))
                .then(|| u32::try_from(took).unwrap_or(u32::MAX))
        })
        .collect();
    latencies_us.sort_unstable();
    Ok(LoadResult {
        calls: succeeded,
        errors: failed,
        first_error,
        latencies_us,
        window: shape.measure,
        server_cpu: cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "\
finished in 1.50s, 62345.33 req/s, 3.21MB/s
requests: 93518 total, 93774 started, 93518 done, 93516 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 93516 2xx, 0 3xx, 0 4xx, 2 5xx
traffic: 4.81MB (5039578) total, 1.19MB (1248094) headers (space savings 93.41%), 2.67MB (2804760) data
";

    #[test]
    fn reads_the_summary() {
        assert_eq!(count_before(SUMMARY, " done"), Some(93518));
        assert_eq!(count_before(SUMMARY, " succeeded"), Some(93516));
        assert_eq!(data_bytes(SUMMARY), Some(2804760));
    }

    #[test]
    fn bodies_are_enveloped_as_the_protocol_wants() {
        let spec = |protocol, streaming| CallSpec {
            protocol,
            method: "Echo",
            streaming,
            messages: vec![bytes::Bytes::from_static(b"ab")],
        };
        assert_eq!(body(&spec(Protocol::Connect, false)), b"ab");
        assert_eq!(body(&spec(Protocol::Connect, true)), b"\0\0\0\0\x02ab");
        assert_eq!(body(&spec(Protocol::Grpc, false)), b"\0\0\0\0\x02ab");
    }
}
