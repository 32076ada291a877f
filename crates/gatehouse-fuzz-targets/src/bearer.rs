//! Target `bearer`: [`gatehouse::http::extract_bearer`] on arbitrary `Authorization` headers and
//! query strings.
//!
//! Input: the bytes before the first NUL are `Authorization` values, one per line (values
//! `http` refuses are dropped, as hyper would refuse them); the bytes after it, when UTF-8, are
//! the query string.
//!
//! Invariants:
//! - an accepted token is exactly what follows `Bearer` (any case) and one or more spaces in the
//!   single `Authorization` value, is a `b64token` (RFC 6750 §2.1), fits the cap, and the query
//!   has no `access_token`;
//! - "no credentials" means no header, or a scheme other than `Bearer`;
//! - the cap only ever turns an answer into `TooLarge`: under a larger cap the answer is the
//!   same, or the one `TooLarge` was hiding.

use gatehouse::http::{BearerError, MalformedReason, extract_bearer};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

/// A small cap, so that the size checks are reached, and the default one.
const CAPS: [usize; 2] = [48, gatehouse::DEFAULT_MAX_TOKEN_BYTES];

/// Fuzz target `bearer` (see the module docs).
pub fn bearer(data: &[u8]) {
    let (header_part, query) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], std::str::from_utf8(&data[i + 1..]).ok()),
        None => (data, None),
    };
    let mut headers = HeaderMap::new();
    if !header_part.is_empty() {
        for line in header_part.split(|&b| b == b'\n') {
            if let Ok(v) = HeaderValue::from_bytes(line) {
                headers.append(AUTHORIZATION, v);
            }
        }
    }
    let values: Vec<&[u8]> = headers
        .get_all(AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();

    let small = extract_bearer(&headers, query, CAPS[0]);
    let large = extract_bearer(&headers, query, CAPS[1]);
    for (cap, result) in CAPS.iter().zip([&small, &large]) {
        check(&values, query, *cap, result);
    }
    match (&small, &large) {
        (Err(BearerError::Malformed(MalformedReason::TooLarge)), _) => {}
        (a, b) => assert_eq!(a, b, "a larger cap changed an answer other than TooLarge"),
    }
    if let Some(q) = query {
        // Must not panic on any query or form body.
        let _ = gatehouse::http::bearer::has_access_token_param(q);
    }
}

fn check(
    values: &[&[u8]],
    query: Option<&str>,
    cap: usize,
    result: &Result<gatehouse::AccessToken, BearerError>,
) {
    match result {
        Ok(token) => {
            let token = token.expose().as_bytes();
            let [value] = values else {
                panic!(
                    "a token accepted from {} Authorization values",
                    values.len()
                );
            };
            assert!(token.len() <= cap, "token over the cap accepted");
            assert!(is_b64token(token), "accepted token is not a b64token");
            let scheme_and_spaces = &value[..value.len() - token.len()];
            assert!(value.ends_with(token), "token is not the end of the header");
            assert!(
                scheme_and_spaces.len() > 6
                    && scheme_and_spaces[..6].eq_ignore_ascii_case(b"bearer")
                    && scheme_and_spaces[6..].iter().all(|&b| b == b' '),
                "token not preceded by `Bearer` and spaces"
            );
            assert!(
                !query.is_some_and(|q| { http_form_keys(q).any(|k| k == "access_token") }),
                "token accepted although the query also carries one"
            );
        }
        Err(BearerError::Missing) => match values {
            [] => {}
            [value] => {
                let scheme = value.split(|&b| b == b' ').next().unwrap_or_default();
                assert!(
                    !scheme.eq_ignore_ascii_case(b"bearer"),
                    "a Bearer header reported as no credentials"
                );
            }
            _ => panic!("several Authorization headers reported as no credentials"),
        },
        Err(BearerError::Malformed(MalformedReason::MultipleAuthorization)) => {
            assert!(values.len() > 1);
        }
        Err(BearerError::Malformed(_)) => assert_eq!(values.len(), 1),
    }
}

/// RFC 6750 §2.1, written independently of the library's check.
fn is_b64token(t: &[u8]) -> bool {
    let body = t.iter().take_while(|&&b| b != b'=').count();
    body > 0
        && t[body..].iter().all(|&b| b == b'=')
        && t[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The decoded keys of a form-urlencoded string.
fn http_form_keys(q: &str) -> impl Iterator<Item = String> + '_ {
    q.split('&').map(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        percent_decode_plus(key)
    })
}

fn percent_decode_plus(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
