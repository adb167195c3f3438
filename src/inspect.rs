//! `walab inspect DIR`: read a WAL data directory offline (segments, records, snapshot).
//!
//! A placeholder until the engine lands; the engine's owner fills it in.

use std::path::Path;
use std::process::ExitCode;

/// Describe the WAL data directory `dir`.
pub fn run(dir: &Path) -> ExitCode {
    eprintln!(
        "walab inspect {}: not built yet (it arrives with the WAL engine)",
        dir.display()
    );
    ExitCode::from(2)
}
