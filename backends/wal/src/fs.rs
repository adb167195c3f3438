//! The storage seam: every file-system call the engine makes goes through [`Fs`].
//!
//! [`RealFs`] is `std::fs` with real `fdatasync`. [`SimFs`] keeps, for every file, what was
//! written apart from what was synced, and for the directory, which names were synced, so
//! a test can cut the power at any moment and reopen what a real disk might hold: each
//! unsynced write landed, lost, or landed as garbage; each unsynced create, rename or
//! delete done or not. It can also fail a chosen write, sync, create or remove with ENOSPC,
//! EIO or EMFILE.
//!
//! The seam also owns the data directory's lock ([`Fs::lock_dir`]): two engines appending to
//! one log would interleave records and each delete the other's segments at checkpoints, so
//! a second opener must be refused, and on the simulated file system too, or the crash
//! tests could not open a directory twice in one process the way a real restart does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// An open file the engine writes to. Writes always go to the end.
pub trait FsFile: Send + fmt::Debug {
    /// Append `buf` at the end of the file.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Make the file's data durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cut the file to `len` bytes; later appends go after them.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Start writing back everything appended so far and wait for the previous
    /// write-back, without making anything durable (no journal commit, no cache flush).
    /// Keeps the amount of dirty data in a big file small as it is written.
    fn write_back(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Reserve the file's disk room up to `len` bytes without changing its length
    /// (`fallocate` with `FALLOC_FL_KEEP_SIZE`), so appends up to there cannot fail for want
    /// of space. `ErrorKind::Unsupported` where the file system cannot.
    fn reserve(&mut self, len: u64) -> io::Result<()> {
        let _ = len;
        Ok(())
    }
}

/// The name of the lock file in a data directory. It holds the pid of the process that
/// holds the lock (for the error a second opener gets); its content means nothing else, and
/// recovery and inspection pass it by like any file that is not a segment or a snapshot.
pub const LOCK_FILE: &str = "LOCK";

/// A held data-directory lock; dropping it releases the lock.
pub trait DirLock: Send + Sync + fmt::Debug {}

/// Why [`Fs::lock_dir`] could not lock a directory.
#[derive(Debug)]
pub enum LockError {
    /// Someone else holds the lock: `pid` is what the holder wrote into the lock file, when
    /// it could be read (a holder between locking and writing has written nothing yet).
    Held {
        /// The holder's process id.
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    Io(io::Error),
}

impl From<io::Error> for LockError {
    fn from(e: io::Error) -> Self {
        LockError::Io(e)
    }
}

/// The file-system operations the engine needs.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Create a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// A whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Create `path` empty (replacing any file there) and open it for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Open an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Rename a file, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Delete a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Make the directory's entries (creates, renames, deletes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take the exclusive lock on the existing directory `dir` without waiting, and write
    /// this process's pid into its lock file ([`LOCK_FILE`]). The lock lasts as long as
    /// the returned value, and no longer than the process: a process killed by SIGKILL
    /// leaves the directory unlocked.
    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>, LockError>;
}

/// Read the pid a lock holder wrote; `None` when there is none yet or it is not a number.
fn parse_pid(bytes: &[u8]) -> Option<u32> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

/// An flock(2) on the open lock file: the kernel drops it when the file is closed, so it
/// goes with the process however the process ends. (Rust opens files close-on-exec, so a
/// child the server spawns does not inherit it.)
#[derive(Debug)]
struct RealDirLock {
    _file: File,
}

impl DirLock for RealDirLock {}

/// A file written with positioned writes (`pwrite`) at an offset the engine tracks: the
/// engine always knows where its bytes went, and fault injection (libfiu's
/// `posix/io/rw/pwrite`) can target file writes without touching the sockets and wake-up
/// pipes that use plain `write`.
#[derive(Debug)]
struct RealFile {
    file: File,
    end: u64,
}

impl FsFile for RealFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.end)?;
        self.end += buf.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.end = len;
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn reserve(&mut self, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: fallocate only reads the descriptor, which `self.file` keeps open.
        let rc =
            unsafe { libc::fallocate(self.file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP | libc::ENOSYS) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the file system cannot reserve room (fallocate)",
            )),
            _ => Err(e),
        }
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn write_back(&mut self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE;
        // SAFETY: sync_file_range only reads the descriptor, which `self.file` keeps open;
        // offset 0 with length 0 means "the whole file".
        let rc = unsafe { libc::sync_file_range(self.file.as_raw_fd(), 0, 0, flags) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        // One open, so a failure (EMFILE above all) leaves no file behind, and a file that
        // exists was opened: the caller's clean-up after a failed segment create has only
        // a whole file or nothing to deal with.
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(RealFile { file, end: 0 }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new().write(true).open(path)?;
        let end = file.metadata()?.len();
        Ok(Box::new(RealFile { file, end }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>, LockError> {
        // Not truncated on open: until the lock is ours, the pid in it is the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = Vec::new();
                let pid = file
                    .read_to_end(&mut text)
                    .ok()
                    .and_then(|_| parse_pid(&text));
                return Err(LockError::Held { pid });
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
        // Not synced: the pid only names a live holder; after a crash it is stale anyway,
        // and the next holder overwrites it.
        file.set_len(0)?;
        file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
        Ok(Box::new(RealDirLock { _file: file }))
    }
}

/// Which call a [`Fault`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// A file append.
    Write,
    /// A file data sync or a directory sync.
    Sync,
    /// Creating a file ([`Fs::create`]); nothing is created. `kind` is what the OS would
    /// say: EMFILE, for instance, is `Other` here, since std has no kind for it.
    Create,
    /// Deleting a file ([`Fs::remove`]); the file stays.
    Remove,
}

/// A failure to inject: the `nth` matching call from now (0 = the next) fails with `kind`.
/// A failed write may leave a prefix of its bytes behind, as a real short write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Which call.
    pub op: FaultOp,
    /// How many matching calls succeed first.
    pub nth: u64,
    /// The error, e.g. `StorageFull` (ENOSPC) or `Other` standing for EIO.
    pub kind: io::ErrorKind,
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    /// What a reader sees now.
    live: Vec<u8>,
    /// What survives a power loss for sure.
    durable: Vec<u8>,
    /// Changes since the last sync, oldest first.
    pending: Vec<Pending>,
}

#[derive(Debug, Clone)]
enum Pending {
    Write { at: usize, data: Vec<u8> },
    Truncate(usize),
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<u64, SimFile>,
    live_names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: Vec<PathBuf>,
    next_inode: u64,
    faults: Vec<Fault>,
    /// Once set, every call fails: the power is out and the process is as good as dead.
    dead: bool,
    /// Cut the power when this many more syncs have been asked for.
    power_cut_after_syncs: Option<u64>,
    syncs: u64,
    rng: u64,
    /// How long a file sync takes, to make group commit observable in tests.
    sync_delay: std::time::Duration,
    /// Directories whose lock is held. Not carried over by a power loss: the process that
    /// held them is gone.
    locked: BTreeSet<PathBuf>,
}

/// A simulated file system that keeps written and durable images apart.
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFs").finish_non_exhaustive()
    }
}

fn dead() -> io::Error {
    io::Error::other("simulated power loss: the machine is off")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl SimState {
    fn next_rand(&mut self) -> u64 {
        // xorshift64*: small and deterministic for a given seed.
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn check_alive(&self) -> io::Result<()> {
        if self.dead { Err(dead()) } else { Ok(()) }
    }

    /// Take the fault that matches `op` if its turn has come.
    fn take_fault(&mut self, op: FaultOp) -> Option<io::ErrorKind> {
        let idx = self.faults.iter().position(|f| f.op == op)?;
        if self.faults[idx].nth == 0 {
            Some(self.faults.remove(idx).kind)
        } else {
            self.faults[idx].nth -= 1;
            None
        }
    }

    /// Count a sync; cut the power if its time has come.
    fn sync_point(&mut self) -> io::Result<()> {
        self.check_alive()?;
        self.syncs += 1;
        if let Some(n) = self.power_cut_after_syncs {
            if n == 0 {
                self.dead = true;
                return Err(dead());
            }
            self.power_cut_after_syncs = Some(n - 1);
        }
        if let Some(kind) = self.take_fault(FaultOp::Sync) {
            return Err(io::Error::new(kind, "injected sync failure"));
        }
        Ok(())
    }

    fn inode(&self, path: &Path) -> io::Result<u64> {
        self.live_names
            .get(path)
            .copied()
            .ok_or_else(|| not_found(path))
    }
}

impl SimFs {
    /// An empty file system whose power-loss choices follow `seed`.
    pub fn new(seed: u64) -> Self {
        let fs = SimFs::default();
        fs.lock().rng = seed | 1;
        fs
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail a future call (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Cut the power at the `n`-th sync from now (0 = the next): that sync and every
    /// later call fail, as if the machine went off mid-call.
    pub fn cut_power_at_sync(&self, n: u64) {
        self.lock().power_cut_after_syncs = Some(n);
    }

    /// Make every file sync take `delay`, as a real disk's does.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.lock().sync_delay = delay;
    }

    /// Syncs asked for so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// What the disk holds after the power comes back: a new file system built from the
    /// durable image, with each unsynced change kept, lost or (for writes) turned into
    /// garbage, chosen by the seed. With `keep_all_unsynced`, every change is kept (what a
    /// process crash leaves: the OS still has it all).
    pub fn after_power_loss(&self, keep_all_unsynced: bool) -> SimFs {
        let mut st = self.lock();
        let mut next = SimState {
            rng: st.next_rand() | 1,
            next_inode: st.next_inode,
            dirs: st.dirs.clone(),
            ..SimState::default()
        };
        let names: Vec<(PathBuf, Option<u64>, Option<u64>)> = {
            let mut all: BTreeMap<PathBuf, (Option<u64>, Option<u64>)> = BTreeMap::new();
            for (p, &i) in &st.live_names {
                all.entry(p.clone()).or_default().0 = Some(i);
            }
            for (p, &i) in &st.durable_names {
                all.entry(p.clone()).or_default().1 = Some(i);
            }
            all.into_iter().map(|(p, (l, d))| (p, l, d)).collect()
        };
        for (path, live, durable) in names {
            let chosen = if keep_all_unsynced || live == durable || st.next_rand().is_multiple_of(2)
            {
                live
            } else {
                durable
            };
            if let Some(inode) = chosen {
                next.live_names.insert(path.clone(), inode);
                next.durable_names.insert(path, inode);
            }
        }
        let inodes: Vec<u64> = next.live_names.values().copied().collect();
        for inode in inodes {
            let Some(file) = st.files.get(&inode).cloned() else {
                continue;
            };
            let mut data = file.durable.clone();
            for change in &file.pending {
                let roll = if keep_all_unsynced {
                    0
                } else {
                    st.next_rand() % 3
                };
                match (change, roll) {
                    (_, 1) => {}
                    (Pending::Truncate(len), _) => data.truncate(*len),
                    (Pending::Write { at, data: bytes }, r) => {
                        let end = at + bytes.len();
                        if data.len() < end {
                            data.resize(end, 0);
                        }
                        if r == 0 {
                            data[*at..end].copy_from_slice(bytes);
                        } else {
                            for b in &mut data[*at..end] {
                                *b = st.next_rand() as u8;
                            }
                        }
                    }
                }
            }
            next.files.insert(
                inode,
                SimFile {
                    live: data.clone(),
                    durable: data,
                    pending: Vec::new(),
                },
            );
        }
        SimFs {
            state: Arc::new(Mutex::new(next)),
        }
    }

    /// A file's current bytes, for tests that damage them.
    pub fn read_live(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        let inode = st.live_names.get(path)?;
        st.files.get(inode).map(|f| f.live.clone())
    }

    /// Delete a file durably, as a lost or mistakenly deleted file would be.
    pub fn remove_file(&self, path: &Path) {
        let mut st = self.lock();
        st.live_names.remove(path);
        st.durable_names.remove(path);
    }

    /// Replace a file's bytes, durably, as a disk fault would.
    pub fn overwrite(&self, path: &Path, bytes: Vec<u8>) {
        let mut st = self.lock();
        if let Some(&inode) = st.live_names.get(path)
            && let Some(f) = st.files.get_mut(&inode)
        {
            f.live = bytes.clone();
            f.durable = bytes;
            f.pending.clear();
        }
    }
}

#[derive(Debug)]
struct SimHandle {
    fs: SimFs,
    inode: u64,
}

impl FsFile for SimHandle {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.check_alive()?;
        let fault = st.take_fault(FaultOp::Write);
        let keep = match fault {
            Some(_) if buf.is_empty() => 0,
            Some(_) => (st.next_rand() as usize) % buf.len(),
            None => buf.len(),
        };
        let file = st.files.entry(self.inode).or_default();
        let at = file.live.len();
        file.live.extend_from_slice(&buf[..keep]);
        if keep > 0 {
            file.pending.push(Pending::Write {
                at,
                data: buf[..keep].to_vec(),
            });
        }
        match fault {
            Some(kind) => Err(io::Error::new(kind, "injected write failure")),
            None => Ok(()),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let delay = self.fs.lock().sync_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut st = self.fs.lock();
        st.sync_point()?;
        let file = st.files.entry(self.inode).or_default();
        file.durable = file.live.clone();
        file.pending.clear();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.check_alive()?;
        let file = st.files.entry(self.inode).or_default();
        let len = len as usize;
        file.live.resize(len, 0);
        file.pending.push(Pending::Truncate(len));
        Ok(())
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_alive()?;
        if !st.dirs.iter().any(|d| d == dir) {
            st.dirs.push(dir.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        st.check_alive()?;
        Ok(st
            .live_names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.lock();
        st.check_alive()?;
        let inode = st.inode(path)?;
        Ok(st
            .files
            .get(&inode)
            .map(|f| f.live.clone())
            .unwrap_or_default())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.lock();
        st.check_alive()?;
        if let Some(kind) = st.take_fault(FaultOp::Create) {
            return Err(io::Error::new(kind, "injected create failure"));
        }
        let inode = st.next_inode;
        st.next_inode += 1;
        st.files.insert(inode, SimFile::default());
        st.live_names.insert(path.to_path_buf(), inode);
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            inode,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let st = self.lock();
        st.check_alive()?;
        let inode = st.inode(path)?;
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            inode,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_alive()?;
        let inode = st.inode(from)?;
        st.live_names.remove(from);
        st.live_names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_alive()?;
        st.inode(path)?;
        if let Some(kind) = st.take_fault(FaultOp::Remove) {
            return Err(io::Error::new(kind, "injected remove failure"));
        }
        st.live_names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.sync_point()?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable_names.retain(|p, _| !in_dir(p));
        let live: Vec<(PathBuf, u64)> = st
            .live_names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        st.durable_names.extend(live);
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>, LockError> {
        let mut st = self.lock();
        st.check_alive()?;
        let path = dir.join(LOCK_FILE);
        if st.locked.contains(dir) {
            let pid = st
                .live_names
                .get(&path)
                .and_then(|inode| st.files.get(inode))
                .and_then(|f| parse_pid(&f.live));
            return Err(LockError::Held { pid });
        }
        st.locked.insert(dir.to_path_buf());
        // The file is written like the real one (unsynced), so recovery and the crash
        // tests meet it in the listing as they would on a disk.
        let inode = st.next_inode;
        st.next_inode += 1;
        let pid = format!("{}\n", std::process::id()).into_bytes();
        st.files.insert(
            inode,
            SimFile {
                live: pid.clone(),
                durable: Vec::new(),
                pending: vec![Pending::Write { at: 0, data: pid }],
            },
        );
        st.live_names.insert(path, inode);
        Ok(Box::new(SimDirLock {
            fs: self.clone(),
            dir: dir.to_path_buf(),
        }))
    }
}

/// A held lock on the simulated file system; released on drop, even after a simulated
/// power loss (a lock is process state, not disk state).
#[derive(Debug)]
struct SimDirLock {
    fs: SimFs,
    dir: PathBuf,
}

impl DirLock for SimDirLock {}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        self.fs.lock().locked.remove(&self.dir);
    }
}
