//! The etcd members' pid files cannot be turned against other processes: `kill_member`
//! kills only the member the lab started (its command line and its parent checked), and a
//! pid file is never written through a planted link. Real processes, real files.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use walab_store::etcd::cluster::{kill_member, pid_file, write_pid_file};

fn alive(pid: u32) -> bool {
    // A zombie (killed, not yet reaped) still has a /proc entry; its state says Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

/// Wait (up to 5 s) until `pid`'s command line can be read: between the start of an exec
/// and the new program's arguments, /proc shows an empty one.
fn wait_for_command_line(pid: u32) {
    for _ in 0..500 {
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("pid {pid} shows no command line after 5 s");
}

/// A copy of `sh` called `etcd-imposter`, that sleeps with an etcd member's flags on its
/// command line.
/// Copying an executable while another test thread forks can leave the copy busy or its
/// first exec failing; the tests that start processes take turns.
static PROCESSES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn imposter(dir: &Path) -> std::path::PathBuf {
    let exe = dir.join("etcd-imposter");
    std::fs::copy("/bin/sh", &exe).unwrap();
    exe
}

#[test]
fn a_planted_pid_file_naming_a_stranger_kills_nothing() {
    let _turn = PROCESSES.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("etcd-1")).unwrap();
    let exe = imposter(dir);
    // Started in the background by a shell that exits: its parent is not this process, as
    // with a process someone else started.
    let out = Command::new("/bin/sh")
        .args([
            "-c",
            r#""$0" -c 'sleep 30; :' --name etcd-1 --data-dir "$1" >/dev/null 2>&1 & echo $!"#,
        ])
        .arg(&exe)
        .arg(dir.join("etcd-1"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid));
    write_pid_file(dir, "etcd-1", pid).unwrap();
    let err = kill_member(dir, "etcd-1").unwrap_err();
    assert!(err.contains("not the member the lab started"), "{err}");
    assert!(err.contains("not by the lab"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid), "the stranger must live");
    let _ = Command::new("kill").arg(pid.to_string()).status();
}

#[test]
fn a_process_of_ours_with_another_members_flags_is_not_killed_either() {
    let _turn = PROCESSES.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exe = imposter(dir);
    let mut child = Command::new(&exe)
        .args(["-c", "sleep 30; :", "--name", "etcd-2", "--data-dir"])
        .arg(dir.join("etcd-2"))
        .spawn()
        .unwrap();
    // `spawn` returns once the exec has begun; the new command line shows a moment later.
    wait_for_command_line(child.id());
    write_pid_file(dir, "etcd-1", child.id()).unwrap();
    let err = kill_member(dir, "etcd-1").unwrap_err();
    assert!(err.contains("--name etcd-1"), "{err}");
    assert!(child.try_wait().unwrap().is_none(), "still running");

    // The same process named as the member it is: killed.
    write_pid_file(dir, "etcd-2", child.id()).unwrap();
    std::fs::create_dir(dir.join("etcd-2")).unwrap();
    assert_eq!(kill_member(dir, "etcd-2"), Ok(child.id()));
    assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
}

#[test]
fn a_pid_file_is_never_written_through_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, pid_file(dir, "etcd-1")).unwrap();
    write_pid_file(dir, "etcd-1", 4242).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let meta = std::fs::symlink_metadata(pid_file(dir, "etcd-1")).unwrap();
    assert!(meta.is_file(), "the link was replaced by a file");
    assert_eq!(
        std::fs::read_to_string(pid_file(dir, "etcd-1")).unwrap(),
        "4242"
    );
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 2);
}
