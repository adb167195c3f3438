//! Power loss at any sync, on the simulated file system: after reopening, the state is what
//! the acknowledged writes say (for `always`), or a consistent prefix of the history (for
//! `never` and `interval`, which promise nothing about power loss).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use walab_wal::fs::SimFs;
use walab_wal::{RecoveryMode, SyncPolicy};

#[derive(Debug, Clone)]
enum Step {
    Set(u8, u16),
    Delete(u8),
    Clear,
    Checkpoint,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0u8..8, any::<u16>()).prop_map(|(k, v)| Step::Set(k, v)),
        4 => (0u8..8).prop_map(Step::Delete),
        1 => Just(Step::Clear),
        2 => Just(Step::Checkpoint),
    ]
}

type Model = BTreeMap<String, String>;

fn apply(model: &mut Model, s: &Step) {
    match s {
        Step::Set(k, v) => {
            model.insert(format!("k{k}"), format!("v{v}"));
        }
        Step::Delete(k) => {
            model.remove(&format!("k{k}"));
        }
        Step::Clear => model.clear(),
        Step::Checkpoint => {}
    }
}

fn model_of(history: &[Step]) -> Model {
    let mut m = Model::new();
    for s in history {
        apply(&mut m, s);
    }
    m
}

fn policies() -> impl Strategy<Value = (SyncPolicy, bool)> {
    prop_oneof![
        Just((SyncPolicy::Always, true)),
        Just((SyncPolicy::Always, false)),
        Just((SyncPolicy::Never, true)),
        Just((SyncPolicy::Interval(Duration::from_millis(1)), true)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn power_loss_at_any_sync_keeps_what_was_promised(
        seed in any::<u64>(),
        (sync, group_commit) in policies(),
        steps in proptest::collection::vec(step(), 1..80),
        cut_at in 0u64..60,
        power in any::<bool>(),
    ) {
        let fs = SimFs::new(seed);
        let cfg = config(sync).group_commit(group_commit).segment_bytes(4096);
        let e = open(&fs, cfg.clone()).unwrap();
        fs.cut_power_at_sync(cut_at);
        let mut acked: Vec<Step> = Vec::new();
        let mut in_flight: Option<Step> = None;
        for s in &steps {
            let ok = match s {
                Step::Set(k, v) => e.set(format!("k{k}").as_bytes(), format!("v{v}").as_bytes()).is_ok(),
                Step::Delete(k) => e.delete(format!("k{k}").as_bytes()).is_ok(),
                Step::Clear => e.clear().is_ok(),
                Step::Checkpoint => { let _ = e.checkpoint(); true }
            };
            if ok {
                acked.push(s.clone());
            } else {
                in_flight = Some(s.clone());
                break;
            }
        }
        let image = if power { fs.after_power_loss(false) } else { fs.after_power_loss(true) };
        std::mem::forget(e);
        let durable = sync == SyncPolicy::Always || !power;
        let mode = if durable { RecoveryMode::TolerateCorruptedTail } else { RecoveryMode::PointInTime };
        let e = open(&image, cfg.recovery_mode(mode)).unwrap();
        let got = contents(&e);
        let mut history = acked.clone();
        history.extend(in_flight.clone());
        if durable {
            let without = model_of(&acked);
            let with = model_of(&history);
            prop_assert!(got == without || got == with,
                "lost or phantom data: got {:?}, acked model {:?}", got, without);
        } else {
            prop_assert!((0..=history.len()).any(|n| model_of(&history[..n]) == got),
                "not a prefix of the history: {:?}", got);
        }
        // The reopened engine keeps working and its sequence numbers go on increasing.
        let before = e.stats().sequence;
        let c = e.set(b"after", b"restart").unwrap();
        prop_assert!(c.sequence > before);
    }
}
