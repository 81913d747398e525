//! JSON bodies of the CSP and native dialects: whatever parses serialises again and parses
//! back to the same value (what the server reads is what a client of these types writes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rekey_proto::{csp, native};
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_vec(&value).expect("a parsed body serialises");
        let again: T = serde_json::from_slice(&text).expect("a serialised body parses");
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<csp::BulkDeleteRequest>(data);
    round_trip::<native::CreateAppRequest>(data);
    round_trip::<native::UpdateAppRequest>(data);
    round_trip::<native::RotateRequest>(data);
    round_trip::<native::DestinationRequest>(data);
    // Bodies that carry secrets redact them in Debug, and CSP's scopes hold free JSON
    // (floats need not round-trip exactly): parse only.
    let _ = serde_json::from_slice::<csp::OauthAppPatch>(data);
    let _ = serde_json::from_slice::<csp::OauthAppRequest>(data);
    let _ = serde_json::from_slice::<csp::OwnerRotationRequest>(data);
});
