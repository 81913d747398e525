//! The token endpoints' request parsing: any body under any content type and dialect, and
//! any Basic header, is parsed or refused with an OAuth error; never a panic.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use rekey_server::oauth::token::{parse_basic, parse_params, Dialect};

const CONTENT_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "",
];

fuzz_target!(|input: (u8, &str, &[u8])| {
    let (selector, header_text, body) = input;
    if let Ok(v) = HeaderValue::from_str(header_text) {
        let _ = parse_basic(&v);
    }
    let mut headers = HeaderMap::new();
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    for dialect in [Dialect::Lwa, Dialect::Generic, Dialect::Csp] {
        if let Ok(params) = parse_params(dialect, &headers, body) {
            assert!(params.values().all(|v| !v.is_empty()));
        }
    }
});
