//! Property tests of the core's parsers and renderers: client ids, secrets and their
//! checksum, destination URLs and directories, the notification envelope, audit links.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use rekey_core::audit_chain::{link, LinkContent};
use rekey_core::clock::Timestamp;
use rekey_core::crypto::KeyedHasher;
use rekey_core::model::{DestinationId, NotificationId};
use rekey_core::notify::{
    envelope, new_secret_payload, url_host_port, AddressPolicy, NotificationType, Target,
};
use rekey_core::secret::{
    generate_api_token, generate_client_secret, has_valid_checksum, is_valid_client_id,
    API_TOKEN_PREFIX, CLIENT_SECRET_PREFIX,
};
use rekey_proto::spapi::{NewSecretPayload, Notification};
use secrecy::ExposeSecret;

const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any one character of a generated secret or API token changed (to another base62
    /// character) fails the checksum: a typo is told from a real value without a lookup.
    #[test]
    fn one_changed_character_fails_the_checksum(pos in 4usize..53, replacement in 0usize..62) {
        for (value, prefix) in [
            (generate_client_secret().expose_secret().to_string(), CLIENT_SECRET_PREFIX),
            (generate_api_token().expose_secret().to_string(), API_TOKEN_PREFIX),
        ] {
            prop_assert!(has_valid_checksum(&value, prefix));
            let mut bytes = value.clone().into_bytes();
            let new = BASE62.as_bytes()[replacement];
            prop_assume!(bytes[pos] != new);
            bytes[pos] = new;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(!has_valid_checksum(&changed, prefix), "{changed}");
        }
    }

    /// The checksum check never panics and never accepts a value of another shape.
    #[test]
    fn arbitrary_strings_are_not_valid_secrets(s in ".{0,80}") {
        prop_assert!(!has_valid_checksum(&s, CLIENT_SECRET_PREFIX) || s.len() == 53);
    }

    /// The CSP client-id rule, as the spec words it.
    #[test]
    fn client_ids_follow_the_csp_rule(s in "[A-Za-z0-9_\\-!. é]{0,260}") {
        let expected = (5..=256).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        prop_assert_eq!(is_valid_client_id(&s), expected);
    }

    /// The URL host parser never panics, and finds the host and port of well-formed URLs.
    #[test]
    fn url_hosts_and_ports_are_found(
        any_text in ".{0,100}",
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,5}){0,2}",
        port in proptest::option::of(1u16..),
        path in "(/[a-z0-9]{0,8}){0,3}",
        https in any::<bool>(),
    ) {
        let _ = url_host_port(&any_text);
        let scheme = if https { "https" } else { "http" };
        let url = match port {
            Some(p) => format!("{scheme}://{host}:{p}{path}"),
            None => format!("{scheme}://{host}{path}"),
        };
        let default = if https { 443 } else { 80 };
        prop_assert_eq!(url_host_port(&url), Some((host.clone(), port.unwrap_or(default))));
    }

    /// An IPv4 address and its IPv4-mapped IPv6 form get the same decision, whatever the
    /// allowed networks.
    #[test]
    fn mapped_addresses_are_judged_as_their_ipv4(octets in any::<[u8; 4]>(), allow_private in any::<bool>()) {
        let policy = AddressPolicy {
            allowed: if allow_private { vec!["10.0.0.0/8".parse().unwrap()] } else { vec![] },
        };
        let v4 = Ipv4Addr::from(octets);
        prop_assert_eq!(
            policy.permits(IpAddr::V4(v4)),
            policy.permits(IpAddr::V6(v4.to_ipv6_mapped()))
        );
    }

    /// Whatever a member types as a spool directory, an accepted one stays below its org's
    /// directory: relative, ASCII, no `.` or `..` segment.
    #[test]
    fn accepted_spool_directories_cannot_leave_the_org(directory in "[a-zA-Z0-9./_\\-\\\\ ~%é]{0,40}") {
        let target = Target::File { directory: directory.clone() };
        if target.validate().is_ok() {
            prop_assert!(!directory.starts_with('/'));
            prop_assert!(directory.is_ascii());
            prop_assert!(directory.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
        }
    }

    /// A new-secret notification round-trips through the wire types the client side parses
    /// (`rekey rotate`), whatever the ids and the secret hold.
    #[test]
    fn notifications_round_trip_through_the_client_types(
        client_id in ".{1,60}",
        secret in ".{1,120}",
        app in ".{0,40}",
        millis in 0i64..4_000_000_000_000,
    ) {
        let now = Timestamp::from_millis(millis);
        let n = envelope(
            NotificationType::NewSecret,
            NotificationId::new(),
            &app,
            DestinationId::new(),
            new_secret_payload(&client_id, &secret, Some(now), None),
            now,
        );
        let text = serde_json::to_string(&n).unwrap();
        let parsed: Notification<NewSecretPayload> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&parsed.payload.new_secret.client_id, &client_id);
        prop_assert_eq!(&parsed.payload.new_secret.new_client_secret, &secret);
        prop_assert_eq!(parsed.notification_metadata.application_id, app);
        prop_assert_eq!(parsed.event_time, now.to_rfc3339());
    }

    /// Any change to any field of an audit event changes its link.
    #[test]
    fn every_field_of_an_audit_event_is_in_its_link(
        fields in proptest::collection::vec(".{0,12}", 9),
        time in any::<i64>(),
        which in 0usize..10,
        change in ".{1,4}",
    ) {
        let key = KeyedHasher::new(&[3; 32]);
        let mut f = fields.clone();
        let content = |f: &[String], t: i64| -> String {
            link(&key, "prev", &LinkContent {
                chain: "c", id: &f[0], time_ms: t, action: &f[1], actor: &f[2], org_id: Some(&f[3]),
                app_id: Some(&f[4]), secret_id: Some(&f[5]), request_id: Some(&f[6]),
                source: Some(&f[7]), outcome: "success", details: &f[8],
            })
        };
        let original = content(&f, time);
        if which == 9 {
            prop_assert_ne!(content(&f, time.wrapping_add(1)), original);
        } else {
            f[which].push_str(&change);
            prop_assert_ne!(content(&f, time), original);
        }
    }
}
