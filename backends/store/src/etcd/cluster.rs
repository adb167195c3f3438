//! A three-member etcd cluster on this machine: its layout (names, ports, data directories,
//! command lines), and a launcher for the tests and the torture harness.
//!
//! `walab lab --etcd` supervises the same command lines with its own restart loop; the
//! launcher here is the blocking twin for code that is not async. Each member's pid is
//! written to `<pid dir>/<name>.pid` when it starts, which is how the etcd backend's
//! `/admin/crash?mode=leader` finds the process to kill.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::gateway::Gateway;

/// The lab's member ports: etcd's own three-member example (its Procfile) uses these, and
/// they clash neither with the lab's 8000-8004 nor with an etcd on the default 2379.
pub const LAB_PORTS: [(u16, u16); 3] = [(12379, 12380), (22379, 22380), (32379, 32380)];

/// One member.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    /// `etcd-1`.
    pub name: String,
    /// Where clients connect.
    pub client_port: u16,
    /// Where the other members connect.
    pub peer_port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// A cluster's layout.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The address every member listens on.
    pub host: String,
    /// The members.
    pub members: Vec<MemberSpec>,
    /// Where each member's pid and log go.
    pub run_dir: PathBuf,
}

impl ClusterSpec {
    /// Members `etcd-1..` on `ports` (client, peer), with data under `dir/etcd-N`.
    pub fn new(dir: &Path, ports: &[(u16, u16)]) -> ClusterSpec {
        ClusterSpec {
            host: "127.0.0.1".into(),
            members: ports
                .iter()
                .enumerate()
                .map(|(i, &(client_port, peer_port))| {
                    let name = format!("etcd-{}", i + 1);
                    MemberSpec {
                        data_dir: dir.join(&name),
                        name,
                        client_port,
                        peer_port,
                    }
                })
                .collect(),
            run_dir: dir.to_owned(),
        }
    }

    /// `members` members on free loopback ports (client and peer each), data under
    /// `dir/etcd-N`: for tests and torture, which run beside whatever else is running.
    /// Every port is held until all are chosen, so none is handed out twice; another
    /// process may still take one before the member binds it.
    pub fn on_free_ports(dir: &Path, members: usize) -> std::io::Result<ClusterSpec> {
        let listeners = (0..2 * members)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<u16>>>()?;
        let pairs: Vec<(u16, u16)> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
        Ok(ClusterSpec::new(dir, &pairs))
    }

    /// The URLs clients use: `ETCD_ENDPOINTS`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://{}:{}", self.host, m.client_port))
            .collect()
    }

    /// The command that runs member `i`, its output going to `<run dir>/<name>.log`.
    pub fn command(&self, etcd: &Path, i: usize) -> std::io::Result<Command> {
        let m = &self.members[i];
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|p| format!("{}=http://{}:{}", p.name, self.host, p.peer_port))
            .collect();
        let client = format!("http://{}:{}", self.host, m.client_port);
        let peer = format!("http://{}:{}", self.host, m.peer_port);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.run_dir.join(format!("{}.log", m.name)))?;
        let mut cmd = Command::new(etcd);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(",")])
            // Ignored once the member has data: a restarted member rejoins from its WAL.
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "walab-lab"])
            // A member the lab restarts asks before it campaigns (etcd 3.4's default is off):
            // without it, its first election timeout bumps the term and unseats the leader the
            // others just elected, a second election the lesson does not speak of.
            .arg("--pre-vote")
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(cmd)
    }

    /// Where member `name`'s pid is kept while it runs.
    pub fn pid_file(&self, name: &str) -> PathBuf {
        pid_file(&self.run_dir, name)
    }
}

/// Where member `name`'s pid is kept, in `dir` (`ETCD_PID_DIR`).
pub fn pid_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pid"))
}

/// The etcd binary: `ETCD_BIN`, or `etcd` on `PATH`; the error says how to get one.
pub fn find_etcd() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("ETCD_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("ETCD_BIN={} is not a file", bin.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "no etcd binary on PATH: install one (Debian/Ubuntu: sudo apt-get install etcd-server; \
             or https://github.com/etcd-io/etcd/releases) or set ETCD_BIN"
                .into()
        })
}

/// Write member `name`'s pid to its pid file in `dir`, without following links: a fresh
/// temporary file (never an existing one, so never a planted link's target) renamed over
/// the pid file (which replaces a link rather than writing through it).
pub fn write_pid_file(dir: &Path, name: &str, pid: u32) -> std::io::Result<()> {
    let file = pid_file(dir, name);
    let tmp = dir.join(format!(".{name}.pid.{}.tmp", std::process::id()));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    std::io::Write::write_all(&mut out, pid.to_string().as_bytes())?;
    drop(out);
    fs::rename(&tmp, &file)
}

/// Remove member `name`'s pid file (it stopped); a missing one is fine.
pub fn remove_pid_file(dir: &Path, name: &str) {
    let _ = fs::remove_file(pid_file(dir, name));
}

/// SIGKILL the member whose pid is in `dir/<name>.pid`, after checking that the process is
/// that member, started beside this one: a pid file can be stale (the pid reused) or
/// planted, and neither may turn a crash demo into killing someone else's process.
/// Returns the pid.
pub fn kill_member(dir: &Path, name: &str) -> Result<u32, String> {
    let file = pid_file(dir, name);
    let pid: u32 = fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .trim()
        .parse()
        .map_err(|_| format!("{} does not hold a pid", file.display()))?;
    is_member(pid, dir, name).map_err(|why| {
        format!(
            "{name}: pid {pid} in {} is not the member the lab started ({why}); not killing it",
            file.display()
        )
    })?;
    sigkill(pid).map_err(|e| format!("cannot kill {name} (pid {pid}): {e}"))?;
    Ok(pid)
}

/// Whether process `pid` is member `name` of the cluster laid out in `dir`: an etcd whose
/// command line says `--name <name> --data-dir <dir>/<name>`, and whose parent is this
/// process or this process's parent (the lab or harness that started both).
fn is_member(pid: u32, dir: &Path, name: &str) -> Result<(), String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = fs::read(proc_dir.join("cmdline")).map_err(|_| "it is not running".to_owned())?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let program = Path::new(std::ffi::OsStr::from_bytes(args[0]));
    // `etcd`, or a versioned copy such as `etcd-3.5` (ETCD_BIN).
    if !program
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("etcd"))
    {
        return Err(format!("it runs {}, not etcd", program.display()));
    }
    let flag = |name: &str| {
        args.windows(2)
            .find(|w| w[0] == name.as_bytes())
            .map(|w| PathBuf::from(std::ffi::OsStr::from_bytes(w[1])))
    };
    if flag("--name").as_deref() != Some(Path::new(name)) {
        return Err(format!("its command line does not say --name {name}"));
    }
    let data_dir = flag("--data-dir").ok_or("its command line has no --data-dir")?;
    let cwd = fs::read_link(proc_dir.join("cwd")).unwrap_or_default();
    let theirs = fs::canonicalize(cwd.join(&data_dir)).unwrap_or(data_dir);
    let ours = dir.join(name);
    let ours = fs::canonicalize(&ours).unwrap_or(ours);
    if theirs != ours {
        return Err(format!(
            "its data directory is {}, not {}",
            theirs.display(),
            ours.display()
        ));
    }
    let stat = fs::read_to_string(proc_dir.join("stat")).map_err(|_| "it is not running")?;
    // Field 4, after the command name in parentheses (which may hold spaces).
    let parent: u32 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .ok_or("its /proc stat cannot be read")?;
    let me = std::process::id();
    if parent != me && parent != std::os::unix::process::parent_id() {
        return Err(format!("it was started by pid {parent}, not by the lab"));
    }
    Ok(())
}

#[allow(unsafe_code)]
fn sigkill(pid: u32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill has no memory-safety preconditions; the pid was checked to be etcd's.
    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A cluster this process runs (tests, torture): started on [`LocalCluster::start`], every
/// member killed on drop.
#[derive(Debug)]
pub struct LocalCluster {
    spec: ClusterSpec,
    etcd: PathBuf,
    children: Vec<Option<Child>>,
}

impl LocalCluster {
    /// Start every member of `spec` and wait until the cluster takes writes.
    pub fn start(spec: ClusterSpec, etcd: PathBuf, patience: Duration) -> Result<Self, String> {
        fs::create_dir_all(&spec.run_dir)
            .map_err(|e| format!("cannot create {}: {e}", spec.run_dir.display()))?;
        let mut cluster = LocalCluster {
            children: (0..spec.members.len()).map(|_| None).collect(),
            spec,
            etcd,
        };
        for i in 0..cluster.spec.members.len() {
            cluster.restart(i)?;
        }
        cluster.wait_ready(patience)?;
        Ok(cluster)
    }

    /// Its layout.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// (Re)start member `i` if it is not running.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if let Some(child) = &mut self.children[i]
            && child.try_wait().ok().flatten().is_none()
        {
            return Ok(());
        }
        let name = self.spec.members[i].name.clone();
        let child = self
            .spec
            .command(&self.etcd, i)
            .and_then(|mut c| c.spawn())
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        write_pid_file(&self.spec.run_dir, &name, child.id())
            .map_err(|e| format!("cannot write {name}'s pid file: {e}"))?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// SIGKILL member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_pid_file(&self.spec.run_dir, &self.spec.members[i].name);
    }

    /// Restart every member that is not running (killed here or through its pid file).
    pub fn restart_dead(&mut self) -> Result<Vec<usize>, String> {
        let mut restarted = Vec::new();
        for i in 0..self.children.len() {
            let dead = match &mut self.children[i] {
                None => true,
                Some(child) => child.try_wait().ok().flatten().is_some(),
            };
            if dead {
                self.children[i] = None;
                self.restart(i)?;
                restarted.push(i);
            }
        }
        Ok(restarted)
    }

    /// The index of the member that leads now, as the members see it.
    pub fn leader(&self) -> Option<usize> {
        let gateway = Gateway::new(&self.spec.endpoints(), Duration::from_secs(2)).ok()?;
        let leader = gateway.wait(gateway.leader()).ok()??;
        self.spec.members.iter().position(|m| m.name == leader.name)
    }

    /// Wait until a write goes through.
    pub fn wait_ready(&self, patience: Duration) -> Result<(), String> {
        let gateway = Gateway::new(&self.spec.endpoints(), Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        loop {
            match gateway.wait(gateway.put(b"walab-cluster-ready", b"1")) {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > patience => {
                    return Err(format!(
                        "the etcd cluster did not take a write within {} s: {e} (logs in {})",
                        patience.as_secs(),
                        self.spec.run_dir.display()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
