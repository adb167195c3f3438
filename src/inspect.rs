//! `walab inspect DIR`: read a WAL data directory offline, like etcd's `dump-logs`.
//!
//! The work is done by the engine's read-only [`walab_wal::inspect`]; this is its command
//! line face: it prints the report and exits non-zero when it found damage.

use std::path::Path;
use std::process::ExitCode;

/// Describe the WAL data directory `dir` and verify every checksum; with `records`, print
/// every record.
pub fn run(dir: &Path, records: bool) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match walab_wal::inspect::inspect(dir, records, &mut out) {
        Ok(f) if f.damage.is_empty() => ExitCode::SUCCESS,
        Ok(f) => {
            eprintln!(
                "walab inspect: {} damaged place(s) in {}; recovery would refuse to start (RECOVERY_MODE=point-in-time keeps the records before the damage)",
                f.damage.len(),
                dir.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("walab inspect: cannot read {}: {e}", dir.display());
            ExitCode::from(2)
        }
    }
}
