//! The processes of our runner's third-party arrangements, driven over the stdin/stdout protocol
//! the official runner uses: the connect-es (Node) conformance client and server in
//! `conformance/node`, and our own `conformance-server` and `conformance-client` binaries, which
//! they talk to (the binaries, not our code in the runner's process: what the official runner runs).
//!
//! * [`setup`] finds `node` and `npm` and runs `conformance/node/setup.sh` (install with `npm ci`,
//!   generate the messages with protoc-gen-es); without `node` or `npm` the peers are skipped, but
//!   a failing setup is an error. [`OurBinaries::locate`] finds (under cargo: builds) our binaries.
//! * A [`ClientProcess`] is one long-lived client program: each [`ClientProcess::call`] writes a
//!   `ClientCompatRequest` to its stdin and waits for the `ClientCompatResponse` with the same test
//!   name; the program runs the calls concurrently.
//! * A [`ServerProcess`] is one server program per server setting, started with a
//!   `ServerCompatRequest` (its stdin is closed right after, as the official runner does). The Node
//!   server, like the suite's reference server, checks each call against the `X-Expect-*` headers
//!   and reports problems on stderr as `FEEDBACK<TAB>test name<TAB>problem` lines, collected here per
//!   test name ([`ServerProcess::feedback`]).
//!
//! Processes are stopped by their own id (`Child::kill`) when dropped.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::proto::connectrpc::conformance::v1 as pb;
use crate::wire::{read_message, write_message};

/// Where the peers are, once set up.
#[derive(Clone, Debug)]
pub struct NodePeers {
    dir: PathBuf,
    node: PathBuf,
}

/// Why the peers are not used although nothing failed (node or npm missing).
#[derive(Clone, Debug)]
pub struct Skipped(pub String);

fn tool_version(tool: &str) -> Option<String> {
    let out = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Sets the peers up in `dir` (`conformance/node`): `Ok(Err(Skipped))` when node or npm is not
/// installed, `Err` when they are but the setup fails.
pub fn setup(dir: &Path, shared_dir: &Path) -> Result<Result<NodePeers, Skipped>, String> {
    let Some(version) = tool_version("node") else {
        return Ok(Err(Skipped("node not found".to_owned())));
    };
    if tool_version("npm").is_none() {
        return Ok(Err(Skipped("npm not found".to_owned())));
    }
    let out = Command::new("bash")
        .arg(dir.join("setup.sh"))
        .env("CONNECT_SHARED_DIR", shared_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}/setup.sh: {e}", dir.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{}/setup.sh failed ({}) with node {version}:\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Ok(NodePeers {
        dir: dir.to_owned(),
        node: PathBuf::from("node"),
    }))
}

impl NodePeers {
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new(&self.node);
        // zlib work (gzip, br, deflate) runs on libuv's pool, 4 threads by default: with dozens of
        // calls at once, queueing there delays messages by more than the suite's timeout grace.
        if std::env::var_os("UV_THREADPOOL_SIZE").is_none() {
            command.env("UV_THREADPOOL_SIZE", "16");
        }
        command.arg(self.dir.join(script)).current_dir(&self.dir);
        command
    }

    /// Starts the connect-es client.
    pub fn client(&self) -> Result<ClientProcess, String> {
        ClientProcess::spawn("node client", self.command("client.mjs"))
    }

    /// Starts a connect-es server as `request` asks. Blocks.
    pub fn server(&self, request: &pb::ServerCompatRequest) -> Result<ServerProcess, String> {
        ServerProcess::spawn("node server", self.command("server.mjs"), request)
    }
}

/// Our `conformance-server` and `conformance-client` binaries.
#[derive(Clone, Debug)]
pub struct OurBinaries {
    /// The server under test.
    pub server: PathBuf,
    /// The client under test.
    pub client: PathBuf,
}

impl OurBinaries {
    /// The binaries beside the running executable (a cargo target directory). Under `cargo run`
    /// (`$CARGO` set) they are built first, with the running executable's profile, so that they
    /// are never older than the code the runner was built from.
    pub fn locate() -> Result<OurBinaries, String> {
        let exe = std::env::current_exe().map_err(|e| format!("the runner's own path: {e}"))?;
        let dir = exe
            .parent()
            .ok_or("the runner's executable has no directory")?
            .to_owned();
        if let Some(cargo) = std::env::var_os("CARGO") {
            let profile = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("debug")
                .to_owned();
            let target_dir = dir.parent().ok_or("no target directory")?;
            let mut command = Command::new(cargo);
            command
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "conformance",
                    "--bins",
                    "--target-dir",
                ])
                .arg(target_dir);
            if profile != "debug" {
                command.args(["--profile", &profile]);
            }
            let status = command
                .stdin(Stdio::null())
                .status()
                .map_err(|e| format!("building conformance-server and conformance-client: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "building conformance-server and conformance-client failed ({status})"
                ));
            }
        }
        let binaries = OurBinaries {
            server: dir.join(format!(
                "conformance-server{}",
                std::env::consts::EXE_SUFFIX
            )),
            client: dir.join(format!(
                "conformance-client{}",
                std::env::consts::EXE_SUFFIX
            )),
        };
        for path in [&binaries.server, &binaries.client] {
            if !path.is_file() {
                return Err(format!(
                    "{} not found: build it with `cargo build -p conformance --bins`",
                    path.display()
                ));
            }
        }
        Ok(binaries)
    }

    /// Starts our client.
    pub fn client(&self) -> Result<ClientProcess, String> {
        ClientProcess::spawn("conformance-client", Command::new(&self.client))
    }

    /// Starts our server as `request` asks. Blocks.
    pub fn server(&self, request: &pb::ServerCompatRequest) -> Result<ServerProcess, String> {
        ServerProcess::spawn("conformance-server", Command::new(&self.server), request)
    }
}

/// Lines a peer wrote to stderr that were not feedback, kept for reports.
type Log = Arc<Mutex<Vec<String>>>;

const LOG_LINES: usize = 200;

fn keep(log: &Log, line: String) {
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    if log.len() < LOG_LINES {
        log.push(line);
    }
}

/// A child process that is killed (by its id) and reaped when dropped.
#[derive(Debug)]
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Pending = Arc<Mutex<Option<HashMap<String, oneshot::Sender<pb::ClientCompatResponse>>>>>;

/// A client program: one process running many calls at once.
#[derive(Debug)]
pub struct ClientProcess {
    label: String,
    requests: Mutex<Option<mpsc::Sender<pb::ClientCompatRequest>>>,
    pending: Pending,
    log: Log,
    _process: Process,
}

impl ClientProcess {
    /// Starts `command` (its stdio is piped here); `label` names it in reports.
    pub fn spawn(label: &str, mut command: Command) -> Result<ClientProcess, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the {label}: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let process = Process(child);
        let log = Log::default();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));

        let (tx, rx) = mpsc::channel::<pb::ClientCompatRequest>();
        std::thread::spawn(move || write_requests(stdin, rx));
        let reader_pending = pending.clone();
        let reader_log = log.clone();
        let reader_label = label.to_owned();
        std::thread::spawn(move || {
            read_responses(stdout, reader_pending, reader_log, reader_label)
        });
        let stderr_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep(&stderr_log, line);
            }
        });
        Ok(ClientProcess {
            label: label.to_owned(),
            requests: Mutex::new(Some(tx)),
            pending,
            log,
            _process: process,
        })
    }

    /// Runs one request; `Err` when the process fails to answer it (exited, or an answer that
    /// cannot be read).
    pub async fn call(
        &self,
        request: pb::ClientCompatRequest,
    ) -> Result<pb::ClientCompatResponse, String> {
        let name = request.test_name.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let Some(pending) = pending.as_mut() else {
                return Err(self.exited());
            };
            if pending.insert(name.clone(), tx).is_some() {
                return Err(format!("two calls named {name} at once"));
            }
        }
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|requests| requests.send(request).is_ok());
        if !sent {
            self.forget(&name);
            return Err(self.exited());
        }
        rx.await.map_err(|_| self.exited())
    }

    /// Drops the wait for a call (it timed out).
    pub fn forget(&self, name: &str) {
        if let Some(pending) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            pending.remove(name);
        }
    }

    fn exited(&self) -> String {
        format!(
            "the {} stopped answering; its stderr:\n{}",
            self.label,
            self.log().join("\n")
        )
    }

    /// The name in reports.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// What the process wrote to stderr (up to a limit).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Closes the process's stdin: it finishes its calls and exits.
    pub fn close(&self) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

fn write_requests(mut stdin: ChildStdin, rx: mpsc::Receiver<pb::ClientCompatRequest>) {
    for request in rx {
        if write_message(&mut stdin, &request).is_err() {
            return;
        }
    }
}

fn read_responses(mut stdout: impl Read, pending: Pending, log: Log, label: String) {
    loop {
        match read_message::<pb::ClientCompatResponse>(&mut stdout) {
            Ok(Some(response)) => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                    .and_then(|pending| pending.remove(&response.test_name));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(response);
                }
            }
            Ok(None) => break,
            Err(e) => {
                keep(&log, format!("(runner) reading the {label}'s output: {e}"));
                break;
            }
        }
    }
    // Every waiter left sees its sender dropped.
    pending.lock().unwrap_or_else(|p| p.into_inner()).take();
}

/// Problems a server reported, per test name.
pub type Feedback = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// A server program: one process per server setting.
#[derive(Debug)]
pub struct ServerProcess {
    label: String,
    response: pb::ServerCompatResponse,
    feedback: Feedback,
    log: Log,
    _process: Process,
}

impl ServerProcess {
    /// Starts `command` (its stdio is piped here) with `request` and reads where it listens;
    /// `label` names it in reports. Blocks (up to 30 s).
    pub fn spawn(
        label: &str,
        mut command: Command,
        request: &pb::ServerCompatRequest,
    ) -> Result<ServerProcess, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the {label}: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let process = Process(child);
        let feedback = Feedback::default();
        let log = Log::default();
        let (stderr_feedback, stderr_log) = (feedback.clone(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, '\t');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("FEEDBACK"), Some(name), Some(problem)) => stderr_feedback
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(name.to_owned())
                        .or_default()
                        .push(problem.to_owned()),
                    _ => keep(&stderr_log, line),
                }
            }
        });
        write_message(&mut stdin, request).map_err(|e| format!("{label} stdin: {e}"))?;
        // The server keeps serving after its stdin closes; closing it now checks that it does.
        drop(stdin);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_message::<pb::ServerCompatResponse>(&mut stdout));
            // Nothing else comes on stdout; keep the pipe open until the process ends.
            let mut rest = Vec::new();
            let _ = stdout.read_to_end(&mut rest);
        });
        let failed = |what: String| {
            std::thread::sleep(Duration::from_millis(200));
            format!(
                "{label} {what}; its stderr:\n{}",
                log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
            )
        };
        let response = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(Some(response))) => response,
            Ok(Ok(None)) => return Err(failed("exited before it was listening".to_owned())),
            Ok(Err(e)) => return Err(failed(format!("wrote an unreadable answer ({e})"))),
            Err(_) => return Err(failed("did not answer within 30 s".to_owned())),
        };
        Ok(ServerProcess {
            label: label.to_owned(),
            response,
            feedback,
            log,
            _process: process,
        })
    }

    /// Where it listens, and its certificate.
    pub fn response(&self) -> &pb::ServerCompatResponse {
        &self.response
    }

    /// The problems reported so far, per test name.
    pub fn feedback(&self) -> BTreeMap<String, Vec<String>> {
        self.feedback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The name in reports.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// What the process wrote to stderr besides feedback (up to a limit).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
