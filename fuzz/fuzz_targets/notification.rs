//! Notification envelopes as the consumer side (`rekey rotate`, and SP-API clients) reads
//! them from a queue: any bytes are parsed or refused, and what parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rekey_proto::spapi::{NewSecretPayload, Notification};

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = serde_json::from_slice::<Notification<NewSecretPayload>>(data) {
        let text = serde_json::to_vec(&n).expect("a parsed notification serialises");
        let again: Notification<NewSecretPayload> =
            serde_json::from_slice(&text).expect("a serialised notification parses");
        assert_eq!(
            again.payload.new_secret.client_id,
            n.payload.new_secret.client_id
        );
        assert_eq!(again.event_time, n.event_time);
    }
});
