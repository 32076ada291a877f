//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1 / §11.2 auth-params, RFC 6750 §3), so that
//! cases compare every parameter exactly instead of searching substrings.

use std::collections::BTreeMap;

/// A parsed `Bearer` challenge: parameter name (lowercase) → unquoted value.
pub(crate) type Params = BTreeMap<String, String>;

/// Parses one challenge. Refuses another scheme, a `token68` form, a parameter that appears
/// twice (RFC 9110 §11.2: each parameter name only once per challenge), empty values and
/// syntax errors.
pub(crate) fn parse(header: &str) -> Result<Params, String> {
    let rest = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| format!("not a Bearer challenge: {header:?}"))?;
    let bytes = rest.as_bytes();
    let mut i = 0;
    let mut out = Params::new();
    let skip_ows = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i] == b' ' || bytes[*i] == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        let start = i;
        while i < bytes.len() && is_tchar(bytes[i]) {
            i += 1;
        }
        if start == i {
            return Err(format!("expected a parameter name at {i} in {header:?}"));
        }
        let name = rest[start..i].to_ascii_lowercase();
        skip_ows(&mut i);
        if bytes.get(i) != Some(&b'=') {
            return Err(format!("expected '=' after {name:?} in {header:?}"));
        }
        i += 1;
        skip_ows(&mut i);
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut v = String::new();
            loop {
                match bytes.get(i) {
                    None => return Err(format!("unterminated quoted string in {header:?}")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let c = bytes
                            .get(i + 1)
                            .ok_or_else(|| format!("dangling escape in {header:?}"))?;
                        v.push(char::from(*c));
                        i += 2;
                    }
                    Some(c) => {
                        v.push(char::from(*c));
                        i += 1;
                    }
                }
            }
            v
        } else {
            let s = i;
            while i < bytes.len() && is_tchar(bytes[i]) {
                i += 1;
            }
            rest[s..i].to_owned()
        };
        if value.is_empty() {
            return Err(format!("empty value for {name:?} in {header:?}"));
        }
        if out.insert(name.clone(), value).is_some() {
            return Err(format!("parameter {name:?} appears twice in {header:?}"));
        }
        skip_ows(&mut i);
        match bytes.get(i) {
            None => return Ok(out),
            Some(b',') => i += 1,
            Some(_) => return Err(format!("expected ',' at {i} in {header:?}")),
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// No credentials: no `error` (RFC 6750 §3.1, A14), `scope` for basic access (A15).
pub(crate) fn missing(metadata: &str) -> Params {
    params(&[("resource_metadata", metadata), ("scope", "invoices:read")])
}

/// A presented token that was refused (A16, E11).
pub(crate) fn invalid_token(metadata: &str) -> Params {
    params(&[
        ("error", "invalid_token"),
        ("error_description", "The access token is invalid"),
        ("resource_metadata", metadata),
        ("scope", "invoices:read"),
    ])
}

/// Malformed credentials (A20, E4).
pub(crate) fn invalid_request(metadata: &str) -> Params {
    params(&[
        ("error", "invalid_request"),
        ("error_description", "The request is malformed"),
        ("resource_metadata", metadata),
        ("scope", "invoices:read"),
    ])
}

/// Lacking scopes: every scope the operation needs (A17, A18).
pub(crate) fn insufficient(metadata: &str, scope: &str) -> Params {
    params(&[
        ("error", "insufficient_scope"),
        (
            "error_description",
            "The access token does not grant the required scope",
        ),
        ("resource_metadata", metadata),
        ("scope", scope),
    ])
}

pub(crate) const BODY_UNAUTHORIZED: &str =
    r#"{"error":"unauthorized","error_description":"An access token is required"}"#;
pub(crate) const BODY_INVALID_TOKEN: &str =
    r#"{"error":"invalid_token","error_description":"The access token is invalid"}"#;
pub(crate) const BODY_INVALID_REQUEST: &str =
    r#"{"error":"invalid_request","error_description":"The request is malformed"}"#;
pub(crate) const BODY_INSUFFICIENT_SCOPE: &str = r#"{"error":"insufficient_scope","error_description":"The access token does not grant the required scope"}"#;
pub(crate) const BODY_UNAVAILABLE: &str = r#"{"error":"temporarily_unavailable","error_description":"The access token cannot be verified right now"}"#;

#[test]
fn parser_reads_quoted_values_and_refuses_duplicates() {
    let p = parse(r#"Bearer error="a\"b", scope="x y",realm=r"#).unwrap();
    assert_eq!(
        p,
        params(&[("error", "a\"b"), ("scope", "x y"), ("realm", "r")])
    );
    assert!(parse(r#"Bearer scope="a", Scope="b""#).is_err());
    assert!(parse(r#"Basic realm="x""#).is_err());
    assert!(parse(r#"Bearer scope="""#).is_err());
    assert!(parse(r#"Bearer scope="a" error="b""#).is_err());
    assert!(parse(r#"Bearer scope="a"#).is_err());
}
