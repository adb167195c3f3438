//! What the torture writers did, and the check after every restart: is every acknowledged
//! write still there, and is nothing there that nobody wrote?
//!
//! For each key, an operation is *superseded* when an acknowledged operation on the same
//! key (or a clear) certainly took effect after it: on the WAL, because its sequence number
//! is higher; on any backend, because its request was sent after the first one's reply
//! arrived. Writes that got no reply (in flight at the kill) or an error may have taken
//! effect or not, so they are never superseded and never required. After a restart, each
//! key must hold the effect of one operation that is not superseded; otherwise it lost an
//! acknowledged write (it holds something older) or shows a phantom (something nobody
//! wrote).

use std::collections::BTreeMap;

/// What an operation does to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The key holds this value.
    Set(String),
    /// The key is absent (a delete, or a clear).
    Absent,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200: the server acknowledged it.
    Acked,
    /// No answer: the connection died with the server.
    InFlight,
    /// An error answer (e.g. 503 after a failed sync or during a power-loss crash).
    Failed,
}

/// One request the writers made.
#[derive(Debug, Clone)]
pub struct Op {
    /// The key it touches, or `None` for a clear (which touches every key).
    pub key: Option<String>,
    /// What it does.
    pub effect: Effect,
    /// Logical time the request was sent.
    pub sent: u64,
    /// Logical time its reply arrived (for acknowledged operations).
    pub replied: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Its WAL sequence number, when the reply carried one.
    pub sequence: Option<u64>,
}

impl Op {
    fn touches(&self, key: &str) -> bool {
        self.key.as_deref().is_none_or(|k| k == key)
    }

    /// Whether `later` certainly took effect after `self`.
    fn superseded_by(&self, later: &Op) -> bool {
        if self.outcome != Outcome::Acked || later.outcome != Outcome::Acked {
            return false;
        }
        match (self.sequence, later.sequence) {
            (Some(a), Some(b)) => b > a,
            _ => later.sent > self.replied,
        }
    }
}

/// The verdict on one key after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It holds what the model allows.
    Ok,
    /// It holds an older state: an acknowledged write is gone.
    Lost,
    /// It holds a value no operation wrote.
    Phantom,
}

/// Check one key: `baseline` is what it held when the cycle started (verified then),
/// `ops` what the cycle did, `actual` what the restarted server holds.
pub fn check_key(key: &str, baseline: &Effect, ops: &[Op], actual: &Effect) -> Verdict {
    let base = Op {
        key: Some(key.to_string()),
        effect: baseline.clone(),
        sent: 0,
        replied: 0,
        outcome: Outcome::Acked,
        sequence: Some(0),
    };
    let relevant: Vec<&Op> = std::iter::once(&base)
        .chain(ops.iter().filter(|o| o.touches(key)))
        .collect();
    let allowed = relevant
        .iter()
        .filter(|a| {
            !relevant
                .iter()
                .any(|b| a.superseded_by(b) && !std::ptr::eq(**a, *b))
        })
        .any(|a| &a.effect == actual);
    if allowed {
        Verdict::Ok
    } else if relevant.iter().any(|a| &a.effect == actual) {
        Verdict::Lost
    } else {
        Verdict::Phantom
    }
}

/// The check of a whole cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleCheck {
    /// Keys that lost an acknowledged write.
    pub lost: u64,
    /// Keys holding a value nobody wrote.
    pub phantom: u64,
    /// What the first few of those keys hold, and what was done to them: the evidence a
    /// failed check prints.
    pub findings: Vec<String>,
}

/// How many failed keys a cycle describes.
const FINDINGS: usize = 3;

/// One failed key, in words: what it holds, what it held, and this cycle's operations on it.
fn describe(key: &str, verdict: Verdict, baseline: &Effect, ops: &[Op], actual: &Effect) -> String {
    let ops: Vec<String> = ops
        .iter()
        .filter(|o| o.touches(key))
        .map(|o| {
            format!(
                "{:?} {:?} sent {} replied {} seq {:?}",
                o.effect, o.outcome, o.sent, o.replied, o.sequence
            )
        })
        .collect();
    format!(
        "{verdict:?} {key}: holds {actual:?}, held {baseline:?} when the cycle began; this cycle: [{}]",
        ops.join("; ")
    )
}

/// Check every key in `keys` (all keys ever used) against the model.
pub fn check_cycle(
    keys: &[String],
    baseline: &BTreeMap<String, String>,
    ops: &[Op],
    actual: &BTreeMap<String, String>,
) -> CycleCheck {
    let effect = |m: &BTreeMap<String, String>, k: &str| {
        m.get(k).map_or(Effect::Absent, |v| Effect::Set(v.clone()))
    };
    let mut check = CycleCheck::default();
    for key in keys {
        let (before, after) = (effect(baseline, key), effect(actual, key));
        let verdict = check_key(key, &before, ops, &after);
        match verdict {
            Verdict::Ok => continue,
            Verdict::Lost => check.lost += 1,
            Verdict::Phantom => check.phantom += 1,
        }
        if check.findings.len() < FINDINGS {
            check
                .findings
                .push(describe(key, verdict, &before, ops, &after));
        }
    }
    // Keys the writers never use must not appear either.
    for key in actual.keys().filter(|k| !keys.contains(k)) {
        check.phantom += 1;
        if check.findings.len() < FINDINGS {
            check
                .findings
                .push(format!("Phantom {key}: a key no writer uses"));
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        key: &str,
        effect: Effect,
        sent: u64,
        replied: u64,
        outcome: Outcome,
        seq: Option<u64>,
    ) -> Op {
        Op {
            key: Some(key.into()),
            effect,
            sent,
            replied,
            outcome,
            sequence: seq,
        }
    }

    fn set(v: &str) -> Effect {
        Effect::Set(v.into())
    }

    #[test]
    fn the_latest_acknowledged_write_must_survive() {
        let ops = [
            op("k", set("a"), 1, 2, Outcome::Acked, Some(1)),
            op("k", set("b"), 3, 4, Outcome::Acked, Some(2)),
        ];
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("b")),
            Verdict::Ok
        );
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("a")),
            Verdict::Lost
        );
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &Effect::Absent),
            Verdict::Lost
        );
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("zzz")),
            Verdict::Phantom
        );
    }

    #[test]
    fn a_failed_check_names_the_key_what_it_holds_and_what_was_done_to_it() {
        let keys = ["k".to_string(), "j".to_string()];
        let ops = [op("k", set("a"), 1, 2, Outcome::Acked, Some(1))];
        let actual = BTreeMap::from([
            ("k".to_string(), "zzz".to_string()),
            ("stray".to_string(), "1".to_string()),
        ]);
        let check = check_cycle(&keys, &BTreeMap::new(), &ops, &actual);
        assert_eq!((check.lost, check.phantom), (0, 2));
        assert_eq!(check.findings.len(), 2, "{:?}", check.findings);
        assert!(
            check.findings[0].starts_with("Phantom k: holds Set(\"zzz\")")
                && check.findings[0].contains("Set(\"a\") Acked"),
            "{}",
            check.findings[0]
        );
        assert!(check.findings[1].contains("stray"), "{}", check.findings[1]);
    }

    #[test]
    fn writes_without_a_reply_may_go_either_way() {
        let ops = [
            op("k", set("a"), 1, 2, Outcome::Acked, Some(1)),
            op("k", set("b"), 3, 0, Outcome::InFlight, None),
        ];
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("a")),
            Verdict::Ok
        );
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("b")),
            Verdict::Ok
        );
    }

    #[test]
    fn concurrent_writes_without_sequences_may_land_in_either_order() {
        // Both sent before either reply: either may be the last.
        let ops = [
            op("k", set("a"), 1, 3, Outcome::Acked, None),
            op("k", set("b"), 2, 4, Outcome::Acked, None),
        ];
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("a")),
            Verdict::Ok
        );
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("b")),
            Verdict::Ok
        );
        // One sent after the other's reply must win.
        let ops = [
            op("k", set("a"), 1, 2, Outcome::Acked, None),
            op("k", set("b"), 3, 4, Outcome::Acked, None),
        ];
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("a")),
            Verdict::Lost
        );
    }

    #[test]
    fn a_clear_supersedes_every_key() {
        let clear = Op {
            key: None,
            effect: Effect::Absent,
            sent: 3,
            replied: 4,
            outcome: Outcome::Acked,
            sequence: Some(2),
        };
        let ops = [op("k", set("a"), 1, 2, Outcome::Acked, Some(1)), clear];
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &Effect::Absent),
            Verdict::Ok
        );
        assert_eq!(
            check_key("k", &Effect::Absent, &ops, &set("a")),
            Verdict::Lost
        );
        // The baseline counts as acknowledged before everything in the cycle.
        assert_eq!(
            check_key("j", &set("old"), &ops, &set("old")),
            Verdict::Lost
        );
    }
}
