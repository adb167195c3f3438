//! Real servers for the programs that measure them: `walab serve` started as a child on a
//! free loopback port with its own data directory and settings, waited for, asked for its
//! stats and killed. `walab torture` and `walab experiment` both drive servers through this,
//! so they start them the same way.

pub mod load;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use walab_store::BackendKind;

use crate::client::{Blocking, Client};

/// A `walab serve` child.
#[derive(Debug)]
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A free port on 127.0.0.1 (another process may still take it before the server binds it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Start `walab serve` for `backend` in `dir` on a free port, with `env` on top of a
    /// quiet log level; its log is appended to `log`. Settings not in `env` are the
    /// defaults, unless the caller's environment sets them.
    pub fn start(
        backend: BackendKind,
        dir: &Path,
        env: &[(String, String)],
        log: &Path,
    ) -> std::io::Result<Server> {
        let port = free_port()?;
        let exe = std::env::current_exe()?;
        // The server's own log (thousands of "poisoned" errors after a power-loss crash)
        // goes to a file, so the caller's output stays one line per step.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(exe)
            .arg("serve")
            .env("KV_BACKEND", backend.as_str())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("DATA_DIR", dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    /// Wait until `/health` answers 200; returns how long it took. A server that exits or
    /// stays unhealthy is killed and the error says which.
    pub fn wait_healthy(&mut self, limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let client = Blocking::from(Client::addr(self.addr).limit(Duration::from_secs(2)));
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the server exited during start-up ({status})"));
            }
            if let Ok(r) = client.request("GET", "/health", None)
                && r.status == 200
            {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.kill();
        Err(format!("not healthy after {limit:?}"))
    }

    /// `GET /admin/stats`, or `Null` when it gives no answer.
    pub fn stats(&self) -> serde_json::Value {
        Blocking::new(self.addr)
            .request("GET", "/admin/stats", None)
            .map(|r| r.json())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Whether the server promises, in its `/admin/stats` `durability`, to keep every
    /// acknowledged write through a power loss (`power_loss`) or a process crash (a member
    /// kill of a replicated store counts as one): what the torture and the experiments hold
    /// a backend to.
    pub fn promises_no_loss(&self, power_loss: bool) -> bool {
        let field = if power_loss {
            "survives_power_loss"
        } else {
            "survives_process_crash"
        };
        self.stats()["durability"][field] == true
    }

    /// SIGKILL and reap it (a process crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for a process that is killing itself (after `/admin/crash`) to be gone.
    pub fn wait_gone(&mut self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.kill();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A harness never leaves a server behind, whatever happened to its caller.
        self.kill();
    }
}

/// A temporary directory removed on drop, without a dependency for it.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory under the system's temporary directory, named for `what`.
    pub fn new(what: &str) -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("walab-{what}-{}-{nanos}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }

    /// `dir`, made if missing, removed on drop.
    pub fn at(dir: &Path) -> TempDir {
        let _ = std::fs::create_dir_all(dir);
        TempDir(dir.to_path_buf())
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
