//! Client ids, secrets and their checksum, destination URLs: the checks that run on input
//! before any lookup never panic, and a secret that passes the checksum has Rekey's shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rekey_core::secret::{
    check_complexity, has_valid_checksum, is_valid_client_id, CLIENT_SECRET_PREFIX,
};

fuzz_target!(|s: &str| {
    let _ = is_valid_client_id(s);
    let _ = check_complexity(s);
    if has_valid_checksum(s, CLIENT_SECRET_PREFIX) {
        assert!(s.starts_with(CLIENT_SECRET_PREFIX));
    }
    let _ = rekey_core::notify::url_host_port(s);
    let _ = rekey_core::notify::sqs_region_from_url(s);
});
