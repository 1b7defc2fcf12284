//! Servers under measurement as child processes (`e2e serve NAME --threads N`), and the flag
//! parsing the benchmark binaries share.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::servers::ServerKind;

type Error = Box<dyn std::error::Error>;

/// A server child process, killed when dropped. It serves until its standard input closes, and
/// says where with one line, `LISTENING addr`.
#[derive(Debug)]
pub struct ServerProcess {
    /// Which server it runs.
    pub kind: ServerKind,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
}

impl ServerProcess {
    /// Starts `e2e` (at `exe`) serving `kind` with `threads` runtime workers, pinned to `cpu` with
    /// taskset when one is given, and waits for its address.
    pub fn spawn(
        exe: &Path,
        kind: ServerKind,
        threads: usize,
        cpu: Option<usize>,
    ) -> Result<Self, Error> {
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(["serve", kind.name(), "--threads", &threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .ok_or_else(|| format!("{} did not start: {line:?}", kind.name()))?
            .parse()?;
        Ok(ServerProcess { kind, addr, child })
    }

    /// Starts the `e2e` binary beside the running one, unpinned, with one worker.
    pub fn spawn_beside(kind: ServerKind) -> Result<Self, Error> {
        let exe = std::env::current_exe()?.with_file_name("e2e");
        Self::spawn(&exe, kind, 1, None)
    }

    /// Its operating-system process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its resident set, in bytes.
    pub fn resident(&self) -> Result<u64, Error> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.child.id()))?;
        let pages: u64 = statm.split_whitespace().nth(1).ok_or("statm")?.parse()?;
        Ok(pages * 4096)
    }

    /// User + system CPU time of the process so far (`ticks_per_s` from `getconf CLK_TCK`).
    pub fn cpu_time(&self, ticks_per_s: f64) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some(Duration::from_secs_f64((utime + stime) / ticks_per_s))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Graceful shutdown may wait for idle connections; the measurement is over, so stop it
        // outright.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value after `name` in `args` (`--name value`).
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The servers a `--servers a,b` flag names, or the four real stacks (ours on tokio and smol,
/// tonic, connectrpc) without one.
pub fn servers_flag(args: &[String]) -> Result<Vec<ServerKind>, String> {
    match flag(args, "--servers") {
        Some(list) => list
            .split(',')
            .map(|n| ServerKind::from_name(n).ok_or_else(|| format!("unknown server {n}")))
            .collect(),
        None => Ok(vec![
            ServerKind::OursTokio,
            ServerKind::OursSmol,
            ServerKind::Tonic,
            ServerKind::Connectrpc,
        ]),
    }
}
