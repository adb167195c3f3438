//! `walab lab` as a supervisor: it restarts a killed child at once, refuses a busy port with
//! one clear line, stops cleanly on SIGTERM, and takes its children with it when it dies.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Walab, free_port, get, signal, wait_healthy, wait_new_pid};
use tempfile::TempDir;

fn lab_with_memory_healthy() -> (Walab, TempDir, [u16; 3]) {
    let dir = TempDir::new().expect("temp dir");
    let ports = [free_port(), free_port(), free_port()];
    let lab = Walab::lab(dir.path(), ports, &[]);
    assert!(
        wait_healthy(ports[1], Duration::from_secs(20)).is_some(),
        "memory never became healthy:\n{}",
        lab.output()
    );
    (lab, dir, ports)
}

#[test]
fn a_killed_child_comes_back_at_once_with_a_new_pid() {
    let (lab, _dir, [_, memory, _]) = lab_with_memory_healthy();
    let stats = get(memory, "/admin/stats").json;
    assert_eq!(stats["restarts"], 0);
    let pid = stats["pid"].as_u64().expect("pid in stats");
    assert_ne!(
        pid,
        u64::from(lab.pid()),
        "the server is a child, not the lab"
    );

    let killed_at = Instant::now();
    signal(u32::try_from(pid).expect("pid fits"), libc::SIGKILL);
    let Some((took, stats)) = wait_new_pid(memory, pid, Duration::from_secs(5)) else {
        panic!("no restart within 5 s:\n{}", lab.output());
    };
    println!(
        "memory child: SIGKILL to healthy again in {} ms",
        killed_at.elapsed().as_millis()
    );
    assert!(took < Duration::from_secs(2), "restart took {took:?}");
    assert_eq!(stats["restarts"], 1);
    let log = lab.output();
    assert!(
        log.contains(&format!("memory on :{memory} exited (killed by signal 9")),
        "the lab names the exit:\n{log}"
    );
    assert!(log.contains("restart #1"), "{log}");
}

#[test]
fn a_busy_port_is_one_clear_line_and_exit_code_2() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let dir = TempDir::new().expect("temp dir");
    let mut lab = Walab::lab(dir.path(), [port, free_port(), free_port()], &[]);
    let status = lab.wait_exit(Duration::from_secs(10)).expect("lab exits");
    assert_eq!(status.code(), Some(2), "{}", lab.output());
    let out = lab.output();
    let line = format!(
        "walab lab: port {port} (wal) is already in use on 127.0.0.1; stop what uses it or pass --wal-port"
    );
    assert!(out.contains(&line), "expected {line:?} in:\n{out}");
    assert_eq!(out.trim().lines().count(), 1, "one line only:\n{out}");
}

#[test]
fn a_second_lab_on_the_same_data_directory_refuses_at_start() {
    let (lab, dir, _) = lab_with_memory_healthy();
    let mut second = Walab::lab(dir.path(), [free_port(), free_port(), free_port()], &[]);
    let status = second
        .wait_exit(Duration::from_secs(10))
        .expect("the second lab exits");
    assert_eq!(status.code(), Some(2), "{}", second.output());
    let out = second.output();
    assert!(
        out.contains("is in use by another walab lab")
            && out.contains(&format!("(pid {})", lab.pid())),
        "{out}"
    );
    assert_eq!(out.trim().lines().count(), 1, "one line only:\n{out}");
}

#[test]
fn a_store_that_cannot_start_is_given_up_loudly_not_restarted_for_ever() {
    // A WAL directory whose only segment starts at record 5: records 1..=4 are in no file,
    // so the server refuses to start, every time.
    let dir = TempDir::new().expect("temp dir");
    let wal = dir.path().join("wal");
    std::fs::create_dir_all(&wal).expect("mkdir");
    std::fs::write(
        wal.join(walab_wal::segment::file_name(5)),
        walab_wal::segment::header(5),
    )
    .expect("segment");
    let ports = [free_port(), free_port(), free_port()];
    let lab = Walab::lab(dir.path(), ports, &[]);
    let started = Instant::now();
    let gave_up = loop {
        let out = lab.output();
        if out.contains("cannot start:") {
            break out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the lab never gave up:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = gave_up
        .lines()
        .find(|l| l.contains("cannot start:"))
        .expect("the line");
    assert!(line.contains(&format!("wal on :{}", ports[0])), "{line}");
    assert!(
        line.contains("records 1..=4 are missing"),
        "the reason: {line}"
    );
    assert!(line.contains("no longer restarts it"), "{line}");
    // The others run on; the broken one is not started again.
    assert!(wait_healthy(ports[1], Duration::from_secs(20)).is_some());
    let restarts = |out: &str| out.matches("restart #").count();
    let before = restarts(&lab.output());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(restarts(&lab.output()), before, "{}", lab.output());
}

#[test]
fn sigterm_stops_the_children_and_exits_0() {
    let (mut lab, _dir, [_, memory, sled]) = lab_with_memory_healthy();
    assert!(wait_healthy(sled, Duration::from_secs(20)).is_some());
    signal(lab.pid(), libc::SIGTERM);
    let status = lab.wait_exit(Duration::from_secs(10)).expect("lab exits");
    assert_eq!(status.code(), Some(0), "{}", lab.output());
    assert!(
        lab.output().contains("walab lab stopped"),
        "{}",
        lab.output()
    );
    for port in [memory, sled] {
        assert!(
            common::http(port, "GET", "/health", None, &[]).is_err(),
            "port {port} still answers after the lab stopped"
        );
    }
}

#[test]
fn children_die_with_a_killed_lab() {
    let (mut lab, _dir, [_, memory, _]) = lab_with_memory_healthy();
    signal(lab.pid(), libc::SIGKILL);
    lab.wait_exit(Duration::from_secs(5)).expect("lab dies");
    let started = Instant::now();
    while common::http(memory, "GET", "/health", None, &[]).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the memory server outlived its lab"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn etcd_without_an_etcd_binary_is_one_line_saying_how_to_get_one() {
    let dir = TempDir::new().expect("temp dir");
    let empty = TempDir::new().expect("an empty PATH");
    let data = dir.path().to_str().expect("utf-8");
    let ports = [free_port(), free_port(), free_port(), free_port()].map(|p| p.to_string());
    let mut lab = Walab::start(
        &[
            "lab",
            "--etcd",
            "--data-dir",
            data,
            "--wal-port",
            &ports[0],
            "--memory-port",
            &ports[1],
            "--sled-port",
            &ports[2],
            "--port",
            &format!("etcd={}", ports[3]),
            "--ui-port",
            "0",
        ],
        &[
            ("PATH", empty.path().to_str().expect("utf-8")),
            ("ETCD_BIN", ""),
        ],
    );
    let status = lab.wait_exit(Duration::from_secs(10)).expect("lab exits");
    assert_eq!(status.code(), Some(2), "{}", lab.output());
    let out = lab.output();
    assert!(
        out.contains("walab lab: --etcd: no etcd binary on PATH")
            && out.contains("apt-get install etcd-server"),
        "{out}"
    );
    assert_eq!(out.trim().lines().count(), 1, "one line only:\n{out}");
}

#[test]
fn a_port_for_an_unknown_backend_lists_the_backends() {
    let mut lab = Walab::start(&["lab", "--port", "rocks=9000"], &[]);
    let status = lab.wait_exit(Duration::from_secs(10)).expect("lab exits");
    assert_eq!(status.code(), Some(2), "{}", lab.output());
    assert!(
        lab.output()
            .contains("unknown backend 'rocks': expected one of wal, memory, sled, etcd, redb"),
        "{}",
        lab.output()
    );
}
