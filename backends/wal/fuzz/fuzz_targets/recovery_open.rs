#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    walab_wal_fuzz::recovery_open::check(data);
});
