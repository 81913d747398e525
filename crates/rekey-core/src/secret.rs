//! Client secrets and API tokens: how they are generated and recognised.
//!
//! Format: `<prefix><43 random base62 chars><6 base62 chars of CRC-32>`, for example
//! `rks_4fQ...Zp0a1B2c`. 43 base62 characters carry 256 bits from the OS CSPRNG. The prefix and
//! checksum let secret scanners recognise a leaked Rekey secret with almost no false positives,
//! and the alphabet (`A-Za-z0-9_`) survives an unencoded form body and a URL, which some SDKs
//! need. Every generated value also meets the CSP complexity rule (see [`check_complexity`]).

use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;

/// Prefix of generated client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "rks_";
/// Prefix of generated user API tokens.
pub const API_TOKEN_PREFIX: &str = "rkt_";
/// Prefix of generated client ids.
pub const CLIENT_ID_PREFIX: &str = "rkc_";

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_CHARS: usize = 43;
const CHECKSUM_CHARS: usize = 6;

/// A new client secret. Shown once to its owner, then only its keyed hash is kept.
pub fn generate_client_secret() -> SecretString {
    SecretString::from(generate_with_prefix(CLIENT_SECRET_PREFIX))
}

/// A new user API token.
pub fn generate_api_token() -> SecretString {
    SecretString::from(generate_with_prefix(API_TOKEN_PREFIX))
}

/// Length of console link tokens and session cookies (base62, about 256 bits).
pub const CONSOLE_TOKEN_CHARS: usize = RANDOM_CHARS;

/// A new console sign-in link token or session cookie value.
pub fn generate_console_token() -> SecretString {
    SecretString::from(random_base62(RANDOM_CHARS))
}

/// A new client id: the prefix and 24 random base62 characters (about 143 bits).
pub fn generate_client_id() -> String {
    let mut id = String::from(CLIENT_ID_PREFIX);
    id.push_str(&random_base62(24));
    id
}

fn generate_with_prefix(prefix: &str) -> String {
    first_complex(std::iter::repeat_with(|| candidate(prefix)))
}

/// The prefix, random characters and the checksum. The prefix brings the special character
/// and a lower-case letter; an upper-case letter and a digit are missing from 43 random
/// characters about once in 10^10, so a candidate almost never needs drawing again.
fn candidate(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + RANDOM_CHARS + CHECKSUM_CHARS);
    s.push_str(prefix);
    s.push_str(&random_base62(RANDOM_CHARS));
    let checksum = crc32fast::hash(s.as_bytes());
    s.push_str(&base62_fixed(u64::from(checksum), CHECKSUM_CHARS));
    s
}

/// The first candidate that meets the CSP complexity rule.
fn first_complex(candidates: impl IntoIterator<Item = String>) -> String {
    candidates
        .into_iter()
        .find(|s| check_complexity(s).is_ok())
        .unwrap_or_default()
}

/// `n` characters drawn uniformly from the base62 alphabet.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "base62 digits are ASCII; an OS RNG failure leaves nothing safe to do"
)]
fn random_base62(n: usize) -> String {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill(&mut buf)
            .expect("the OS random number generator failed");
        // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == n {
                break;
            }
            out.push(BASE62[usize::from(b % 62)] as char);
        }
    }
    out
}

#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "base62 digits are ASCII; an OS RNG failure leaves nothing safe to do"
)]
fn base62_fixed(mut v: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(digits).expect("base62 digits are ASCII")
}

/// Whether `s` has the shape and a correct checksum of a value generated with `prefix`.
/// Cheap; lets the token endpoint and secret scanners tell a typo from a guess.
pub fn has_valid_checksum(s: &str, prefix: &str) -> bool {
    let Some(rest) = s.strip_prefix(prefix) else {
        return false;
    };
    if rest.len() != RANDOM_CHARS + CHECKSUM_CHARS || !rest.bytes().all(|b| BASE62.contains(&b)) {
        return false;
    }
    let (body, checksum) = s.split_at(s.len() - CHECKSUM_CHARS);
    base62_fixed(u64::from(crc32fast::hash(body.as_bytes())), CHECKSUM_CHARS) == checksum
}

/// Why a secret fails the CSP complexity rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComplexityError {
    #[error("a client secret must be at least 8 characters long")]
    TooShort,
    #[error("a client secret must be at most 512 characters long")]
    TooLong,
    #[error("a client secret must contain a lower-case letter")]
    NoLowercase,
    #[error("a client secret must contain an upper-case letter")]
    NoUppercase,
    #[error("a client secret must contain a digit")]
    NoDigit,
    #[error("a client secret must contain a special character")]
    NoSpecial,
    #[error("a client secret must consist of printable ASCII characters without spaces")]
    BadCharacter,
}

/// The CSP rule for client secrets: at least 8 characters with a lower-case letter, an
/// upper-case letter, a digit and a special character. Rekey also caps the length and
/// requires printable ASCII, so every accepted secret can be typed and sent in a form.
pub fn check_complexity(s: &str) -> Result<(), ComplexityError> {
    if s.len() < 8 {
        return Err(ComplexityError::TooShort);
    }
    if s.len() > 512 {
        return Err(ComplexityError::TooLong);
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ComplexityError::BadCharacter);
    }
    let has = |f: fn(&u8) -> bool| s.as_bytes().iter().any(f);
    if !has(u8::is_ascii_lowercase) {
        return Err(ComplexityError::NoLowercase);
    }
    if !has(u8::is_ascii_uppercase) {
        return Err(ComplexityError::NoUppercase);
    }
    if !has(u8::is_ascii_digit) {
        return Err(ComplexityError::NoDigit);
    }
    if !has(|b| !b.is_ascii_alphanumeric()) {
        return Err(ComplexityError::NoSpecial);
    }
    Ok(())
}

/// The last four characters, shown so people can tell secrets apart; nothing for secrets
/// shorter than 20 characters (a caller-chosen 8-character secret would give away half).
pub fn hint(s: &str) -> String {
    if s.chars().count() < 20 {
        return String::new();
    }
    let start = s.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    s[start..].to_string()
}

/// The CSP rule for client ids: 5 to 256 characters of `A-Za-z0-9_-`.
pub fn is_valid_client_id(s: &str) -> bool {
    (5..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A new Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes.
#[allow(
    clippy::expect_used,
    reason = "an OS RNG failure leaves nothing safe to do"
)]
pub fn generate_webhook_secret() -> String {
    use base64::Engine as _;
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .expect("the OS random number generator failed");
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(k)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_secrets_satisfy_complexity_and_checksum() {
        for _ in 0..500 {
            let s = generate_client_secret();
            let s = s.expose_secret();
            assert!(check_complexity(s).is_ok(), "{} fails complexity", hint(s));
            assert!(has_valid_checksum(s, CLIENT_SECRET_PREFIX));
            assert_eq!(s.len(), 4 + 43 + 6);
        }
    }

    #[test]
    fn generated_secrets_use_only_form_and_url_safe_characters() {
        let s = generate_client_secret();
        assert!(s
            .expose_secret()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
    }

    #[test]
    fn generated_secrets_differ() {
        let a = generate_client_secret();
        let b = generate_client_secret();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn a_changed_character_breaks_the_checksum() {
        let s = generate_api_token().expose_secret().to_string();
        let mut bytes = s.clone().into_bytes();
        bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(has_valid_checksum(&s, API_TOKEN_PREFIX));
        assert!(!has_valid_checksum(&tampered, API_TOKEN_PREFIX));
        assert!(!has_valid_checksum(&s, CLIENT_SECRET_PREFIX));
    }

    /// The candidates themselves (not the loop that keeps only complex ones) meet the rule:
    /// a prefix without its special character or lower-case letter fails here.
    #[test]
    fn candidates_meet_complexity_without_a_retry() {
        for prefix in [CLIENT_SECRET_PREFIX, API_TOKEN_PREFIX] {
            for _ in 0..500 {
                let s = candidate(prefix);
                assert_eq!(check_complexity(&s), Ok(()), "{prefix}: {}", hint(&s));
            }
        }
        assert_eq!(
            check_complexity(&candidate("rks")),
            Err(ComplexityError::NoSpecial)
        );
    }

    #[test]
    fn a_candidate_that_fails_complexity_is_drawn_again() {
        let weak = "rks_abcdefghijklmnop".to_string();
        let strong = "rks_abcdefgHIJ123".to_string();
        assert_eq!(first_complex([weak, strong.clone()]), strong);
    }

    #[test]
    fn complexity_rule_names_what_is_missing() {
        assert_eq!(check_complexity("Ab1!"), Err(ComplexityError::TooShort));
        assert_eq!(
            check_complexity("ABCDEFG1!"),
            Err(ComplexityError::NoLowercase)
        );
        assert_eq!(
            check_complexity("abcdefg1!"),
            Err(ComplexityError::NoUppercase)
        );
        assert_eq!(check_complexity("abcdefgH!"), Err(ComplexityError::NoDigit));
        assert_eq!(
            check_complexity("abcdefgH1"),
            Err(ComplexityError::NoSpecial)
        );
        assert_eq!(
            check_complexity("abc defH1!"),
            Err(ComplexityError::BadCharacter)
        );
        assert_eq!(check_complexity("abcdefH1!"), Ok(()));
    }

    #[test]
    fn client_ids_follow_the_csp_rule() {
        assert!(is_valid_client_id(&generate_client_id()));
        assert!(is_valid_client_id("my-app_1"));
        assert!(!is_valid_client_id("abcd"));
        assert!(!is_valid_client_id("has space"));
        assert!(!is_valid_client_id("amzn1.application"));
        assert!(!is_valid_client_id(&"a".repeat(257)));
    }

    #[test]
    fn hint_is_the_last_four_characters_of_long_secrets_only() {
        assert_eq!(hint("rks_abcdefghijklmnopqrstuvwxyz"), "wxyz");
        assert_eq!(hint("Short-Secret-1!"), "");
    }
}
