//! The few calls into libc the server and the lab need, in one place, each with the reason
//! it must be `unsafe`.
//!
//! The crate denies `unsafe_code`; the allowances below are the only exceptions.

use std::io;

/// Die the way a crash dies: SIGKILL to ourselves. No destructors run, no buffers are
/// flushed, no graceful shutdown happens; that is the point of `/admin/crash`.
#[allow(unsafe_code)]
pub fn kill_self() {
    // SAFETY: getpid and kill have no memory-safety preconditions; the signal is ours.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// Send `signal` to process `pid` (one of our children).
#[allow(unsafe_code)]
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: kill has no memory-safety preconditions. The pid is a child we have not yet
    // reaped, so it cannot have been reused by another process.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// In a freshly forked child (from `pre_exec`): ask the kernel to SIGKILL us when our parent
/// dies, so a lab that is itself killed does not leave servers holding its ports.
///
/// Linux ties the death signal to the parent *thread* that forked; the lab forks from tokio
/// worker threads, which live as long as the lab's runtime.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid are async-signal-safe and touch no memory
    // of ours, so they are allowed between fork and exec.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have died before prctl took effect; then nobody would signal us.
        if libc::getppid() != parent {
            return Err(io::Error::other(
                "the lab exited while starting this server",
            ));
        }
    }
    Ok(())
}

/// Our process id, as libc wants it.
pub fn own_pid() -> libc::pid_t {
    libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX)
}
