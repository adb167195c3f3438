//! Group commit: concurrent writers share syncs when it is on, and each pays its own when
//! it is off.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use walab_wal::SyncPolicy;
use walab_wal::fs::SimFs;

fn run(group_commit: bool) -> walab_wal::Stats {
    let fs = SimFs::new(31);
    fs.set_sync_delay(Duration::from_millis(2));
    let e = Arc::new(open(&fs, config(SyncPolicy::Always).group_commit(group_commit)).unwrap());
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                for i in 0..25 {
                    let c = e.set(format!("w{t}-{i}").as_bytes(), b"v").unwrap();
                    assert!(c.sequence > last);
                    last = c.sequence;
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(e.len(), 200);
    e.stats()
}

#[test]
fn concurrent_writers_share_syncs() {
    let s = run(true);
    assert_eq!(s.batch_sizes.records, 200);
    assert!(
        s.batch_sizes.max > 1,
        "no batch formed: {:?}",
        s.batch_sizes
    );
    assert!(s.fsyncs < 200, "{} syncs for 200 writes", s.fsyncs);
}

#[test]
fn without_group_commit_every_write_pays_its_own_sync() {
    let s = run(false);
    assert_eq!(s.batch_sizes.max, 1);
    assert_eq!(s.fsyncs, 200);
}
