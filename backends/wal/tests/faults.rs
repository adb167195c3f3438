//! Injected ENOSPC and EIO on write and on sync: the failing write fails, the state stays
//! unchanged, the engine refuses further writes, and a reopen recovers every acknowledged
//! write.

mod common;

use std::io::ErrorKind;

use common::*;
use walab_wal::fs::{Fault, FaultOp, SimFs};
use walab_wal::{Error, SyncPolicy};

#[test]
fn a_failed_write_or_sync_poisons_and_loses_nothing_acknowledged() {
    for op in [FaultOp::Write, FaultOp::Sync] {
        for kind in [ErrorKind::StorageFull, ErrorKind::Other] {
            for nth in 0..4 {
                let fs = SimFs::new(21 + nth);
                let e = open(&fs, config(SyncPolicy::Always)).unwrap();
                for i in 0..5 {
                    e.set(format!("k{i}").as_bytes(), b"v").unwrap();
                }
                fs.inject(Fault { op, nth, kind });
                let mut acked = contents(&e);
                let mut failed = None;
                for i in 5..20 {
                    let key = format!("k{i}");
                    match e.set(key.as_bytes(), b"v") {
                        Ok(_) => {
                            acked.insert(key, "v".into());
                        }
                        Err(err) => {
                            failed = Some(key);
                            assert!(matches!(err, Error::WriteFailed { .. }), "{err}");
                            break;
                        }
                    }
                }
                let failed = failed.expect("the fault fired");
                assert_eq!(contents(&e), acked, "{op:?} {kind:?} {nth}: state changed");
                assert!(
                    matches!(e.set(b"later", b"v"), Err(Error::Poisoned { .. })),
                    "writes are refused after a failure"
                );
                assert!(e.stats().poisoned.is_some());
                let fs = process_crash(&fs, e);
                let e = open(&fs, config(SyncPolicy::Always)).unwrap();
                let mut got = contents(&e);
                // The failed write's bytes may have reached the file: either way is fine.
                got.remove(&failed);
                assert_eq!(got, acked, "{op:?} {kind:?} {nth}");
                e.set(b"after", b"reopen").unwrap();
            }
        }
    }
}
