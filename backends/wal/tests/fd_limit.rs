//! Out of file descriptors for real (EMFILE, "Too many open files"): a checkpoint fails,
//! writes go on, and once descriptors are free again the checkpoint succeeds and nothing is
//! lost. Its own test binary, with one test, since it lowers the process's fd limit.

use std::fs::File;

use walab_wal::{Config, Engine, Error};

/// RLIMIT_NOFILE's current (soft, hard) values.
#[allow(unsafe_code)]
fn nofile_limit() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through the pointer, which points at a live,
    // properly aligned local.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    lim
}

#[allow(unsafe_code)]
fn set_nofile_limit(lim: &libc::rlimit) {
    // SAFETY: setrlimit only reads the rlimit the reference points at.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, lim) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn running_out_of_file_descriptors_fails_a_checkpoint_but_no_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path()).checkpoint_threshold(0);
    let e = Engine::open(config.clone()).unwrap();
    for i in 0..10 {
        e.set(format!("before-{i}").as_bytes(), b"1").unwrap();
    }

    let original = nofile_limit();
    // Low enough that hoarding the rest is quick, high enough for what is open already.
    set_nofile_limit(&libc::rlimit {
        rlim_cur: original.rlim_cur.min(256),
        rlim_max: original.rlim_max,
    });
    let mut hoard = Vec::new();
    let emfile = loop {
        match File::open("/dev/null") {
            Ok(f) => hoard.push(f),
            Err(e) => break e,
        }
    };
    assert_eq!(emfile.raw_os_error(), Some(libc::EMFILE), "{emfile}");

    let err = e.checkpoint().unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EMFILE)),
        "{err}"
    );
    e.set(b"during", b"2")
        .expect("a write needs no new descriptor");
    let s = e.stats();
    assert_eq!((s.checkpoint_failures, s.poisoned.clone()), (1, None));

    drop(hoard);
    let r = e.checkpoint().expect("descriptors are free again");
    assert_eq!(r.records_truncated, 11);
    e.set(b"after", b"3").unwrap();
    set_nofile_limit(&original);

    drop(e);
    let e = Engine::open(config).unwrap();
    assert_eq!(e.len(), 12);
    assert_eq!(e.get(b"during").as_deref(), Some(&b"2"[..]));
    assert_eq!(e.recovery().records_replayed, 1);
}
