//! Helpers for the process-level tests: requests over the lab's client, free ports, and a guard
//! that runs the `walab` binary and stops it (and, through it, its children) on drop.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub mod oneshot;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use walab::client::{Answer, Blocking, Client, ClientError};

/// One HTTP answer, its body read as text and as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub json: Value,
    answer: Answer,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.answer.header(name)
    }
}

impl From<Answer> for Reply {
    fn from(answer: Answer) -> Reply {
        Reply {
            status: answer.status,
            json: answer.json(),
            text: answer.text(),
            answer,
        }
    }
}

/// Send one request to 127.0.0.1:`port` on a connection of its own and read the whole
/// answer, with the lab's own client ([`walab::client`]).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Reply, ClientError> {
    let client = Blocking::from(Client::tcp("127.0.0.1", port).one_connection_per_request());
    let body = body.unwrap_or("").as_bytes().to_vec();
    client.send(method, path, headers, body).map(Reply::from)
}

/// GET, panicking with context on a connection failure.
pub fn get(port: u16, path: &str) -> Reply {
    http(port, "GET", path, None, &[]).unwrap_or_else(|e| panic!("GET :{port}{path}: {e}"))
}

/// POST a JSON body the way the runbook does (`-H "Content-Type: application/json" -d ...`).
pub fn post_json(port: u16, path: &str, body: &str) -> Reply {
    http(
        port,
        "POST",
        path,
        Some(body),
        &[("Content-Type", "application/json")],
    )
    .unwrap_or_else(|e| panic!("POST :{port}{path}: {e}"))
}

/// POST with no body.
pub fn post(port: u16, path: &str) -> Reply {
    http(port, "POST", path, None, &[]).unwrap_or_else(|e| panic!("POST :{port}{path}: {e}"))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// Poll `/health` until it answers 200; how long that took, or `None` after `limit`.
pub fn wait_healthy(port: u16, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if http(port, "GET", "/health", None, &[]).is_ok_and(|r| r.status == 200) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Poll `/admin/stats` until a process other than `old_pid` answers it with 200.
pub fn wait_new_pid(port: u16, old_pid: u64, limit: Duration) -> Option<(Duration, Value)> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(r) = http(port, "GET", "/admin/stats", None, &[])
            && r.status == 200
            && r.json["pid"].as_u64().is_some_and(|p| p != old_pid)
        {
            return Some((started.elapsed(), r.json));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Send `signal` to `pid`.
#[allow(unsafe_code)]
pub fn signal(pid: u32, signal: i32) {
    let pid = i32::try_from(pid).expect("pid fits");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A running `walab` process; stopped with SIGTERM (then SIGKILL) on drop.
pub struct Walab {
    child: Option<Child>,
    output: Arc<Mutex<String>>,
}

impl Walab {
    /// Start `walab <args>` with `envs` added to the environment.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Walab {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_walab"));
        cmd.args(args)
            // Keep the stub engine's panics short in the captured log.
            .env("RUST_BACKTRACE", "0")
            // Logs as they are by default, whatever the runner's environment; a test that
            // wants other logs sets these in `envs`.
            .env_remove("RUST_LOG")
            .env_remove("LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start walab");
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, output.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, output.clone());
        }
        Walab {
            child: Some(child),
            output,
        }
    }

    /// Start `walab serve` over `backend` on a free port with its data in a new temporary
    /// directory, `envs` added, and wait until it is healthy. Returns the server, its port
    /// and the directory (deleted when dropped).
    pub fn serve(backend: &str, envs: &[(&str, &str)]) -> (Walab, u16, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let port_s = port.to_string();
        let mut all = vec![
            ("KV_BACKEND", backend),
            ("HOST", "127.0.0.1"),
            ("PORT", port_s.as_str()),
            ("DATA_DIR", dir.path().to_str().expect("utf-8 temp dir")),
        ];
        all.extend_from_slice(envs);
        let server = Walab::start(&["serve"], &all);
        assert!(
            wait_healthy(port, Duration::from_secs(20)).is_some(),
            "{backend} never became healthy:\n{}",
            server.output()
        );
        (server, port, dir)
    }

    /// Start `walab lab` on the given ports with its data in `dir`.
    pub fn lab(dir: &Path, ports: [u16; 3], envs: &[(&str, &str)]) -> Walab {
        let dir = dir.to_str().expect("utf-8 temp dir");
        let [wal, memory, sled] = ports.map(|p| p.to_string());
        Walab::start(
            &[
                "lab",
                "--data-dir",
                dir,
                "--wal-port",
                &wal,
                "--memory-port",
                &memory,
                "--sled-port",
                &sled,
                // No page: tests run labs side by side, and the page's port is fixed.
                "--ui-port",
                "0",
            ],
            envs,
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything it (and its children) printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Wait up to `limit` for it to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        while started.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut out) = into.lock() {
                out.push_str(&line);
                out.push('\n');
            }
        }
    });
}

impl Drop for Walab {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            signal(child.id(), libc::SIGTERM);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(7) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Its children die with it (parent-death signal).
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
