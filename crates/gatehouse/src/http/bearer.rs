//! Bearer token extraction from the `Authorization` header (RFC 6750 §2.1, OA21 §5.1.1).
//!
//! Decisions (each cited):
//! - The scheme name `Bearer` is matched case-insensitively (RFC 9110 §11.1, OA21 §5.1.1).
//! - The token must be a `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
//!   *"="` (RFC 6750 §2.1). Anything else is a malformed request → `400 invalid_request`.
//! - Tokens in the query string are **ignored**, never accepted (MCP AUTH26 §Token Requirements,
//!   spec-requirements A24): a request carrying only `?access_token=` has no credentials.
//! - A request carrying a header token **and** an `access_token` query parameter or form field
//!   uses more than one method, which OA21 §5.1 / RFC 6750 §2 make an `invalid_request` (E4).
//! - An `Authorization` header with another scheme (`Basic …`) carries no bearer credential. RFC
//!   6750 §3.1: a request that "attempted using an unsupported authentication method" lacks
//!   authentication information, so it gets the plain challenge **without** an error code (A14).
//! - Several `Authorization` headers, `Bearer` with no token, and bad characters are malformed.
//! - A header longer than the configured cap is refused before it is looked at any further, so
//!   an attacker cannot make the server scan or copy megabytes per request.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::caller::AccessToken;

pub use crate::DEFAULT_MAX_TOKEN_BYTES;

const SCHEME: &str = "Bearer";

/// Why a request's credentials are malformed (`400 invalid_request`). The reason goes to logs;
/// the client sees a fixed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedReason {
    /// `Authorization: Bearer` with an empty token.
    #[error("empty bearer token")]
    EmptyToken,
    /// More than one `Authorization` header.
    #[error("several Authorization headers")]
    MultipleAuthorization,
    /// The token has characters outside `b64token`.
    #[error("token has characters outside b64token")]
    BadCharacters,
    /// The header exceeds the configured size cap.
    #[error("token larger than the configured cap")]
    TooLarge,
    /// The token was sent in the header and also as `access_token` in the query or form body.
    #[error("token sent by more than one method")]
    SentTwoWays,
}

impl MalformedReason {
    /// Stable reason code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            MalformedReason::EmptyToken => "request.empty_token",
            MalformedReason::MultipleAuthorization => "request.multiple_authorization",
            MalformedReason::BadCharacters => "request.bad_token_characters",
            MalformedReason::TooLarge => "request.token_too_large",
            MalformedReason::SentTwoWays => "request.token_sent_two_ways",
        }
    }
}

/// The outcome of looking for a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No bearer credential at all (no header, another scheme, or a query-string token only).
    #[error("no bearer credentials")]
    Missing,
    /// Credentials present but malformed.
    #[error("malformed credentials: {0}")]
    Malformed(#[from] MalformedReason),
}

/// Extracts the bearer token from `headers`, checking `query` (the raw query string, if any)
/// only to detect a token sent two ways.
///
/// `max_token_bytes` caps the size of the whole `Authorization` value (minus the scheme), checked
/// before any other parsing.
pub fn extract_bearer(
    headers: &HeaderMap,
    query: Option<&str>,
    max_token_bytes: usize,
) -> Result<AccessToken, BearerError> {
    extract_token(headers, query, max_token_bytes, false).map(|(token, _)| token)
}

/// The scheme an access token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Authorization: Bearer` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP`, with a `DPoP` proof header (RFC 9449 §7.1).
    Dpop,
}

/// [`extract_bearer`], also taking the `DPoP` scheme when `dpop` is true (the token syntax is
/// the same, RFC 9449 §7.1). Without `dpop`, a `DPoP` credential is another scheme: no
/// credentials.
pub fn extract_token(
    headers: &HeaderMap,
    query: Option<&str>,
    max_token_bytes: usize,
    dpop: bool,
) -> Result<(AccessToken, TokenScheme), BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(BearerError::Missing);
    };
    if values.next().is_some() {
        return Err(MalformedReason::MultipleAuthorization.into());
    }
    let raw = value.as_bytes();
    // "Bearer" + at least one space + token: anything longer cannot hold a token within the cap.
    if raw.len() > max_token_bytes.saturating_add(SCHEME.len() + 1) {
        return Err(MalformedReason::TooLarge.into());
    }
    let (scheme, rest) = match raw.iter().position(|&b| b == b' ') {
        Some(i) => (&raw[..i], &raw[i..]),
        None => (raw, &[][..]),
    };
    let scheme = if scheme.eq_ignore_ascii_case(SCHEME.as_bytes()) {
        TokenScheme::Bearer
    } else if dpop && scheme.eq_ignore_ascii_case(b"DPoP") {
        TokenScheme::Dpop
    } else {
        // RFC 6750 §3.1: an unsupported authentication method is treated as no credentials.
        return Err(BearerError::Missing);
    };
    // `credentials = "Bearer" 1*SP b64token`.
    let token = trim_leading_spaces(rest);
    if token.is_empty() {
        return Err(MalformedReason::EmptyToken.into());
    }
    if !is_b64token(token) {
        return Err(MalformedReason::BadCharacters.into());
    }
    if token.len() > max_token_bytes {
        return Err(MalformedReason::TooLarge.into());
    }
    if query.is_some_and(has_access_token_param) {
        return Err(MalformedReason::SentTwoWays.into());
    }
    // `is_b64token` admitted ASCII only, so this conversion cannot fail.
    let token = std::str::from_utf8(token).map_err(|_| MalformedReason::BadCharacters)?;
    Ok((AccessToken::new(token), scheme))
}

/// True when a `application/x-www-form-urlencoded` body (or a query string) has an
/// `access_token` field (RFC 6750 §2.2, §2.3 parameter name).
pub fn has_access_token_param(form: &str) -> bool {
    url::form_urlencoded::parse(form.as_bytes()).any(|(k, _)| k == "access_token")
}

fn trim_leading_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    s
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0 && token[..body_len].iter().all(|&b| B64TOKEN[usize::from(b)])
}

/// The b64token characters (RFC 6750 §2.1) by byte: every request's token is checked byte by
/// byte, with one lookup per byte instead of a chain of comparisons.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn the_b64token_table_holds_exactly_the_rfc_6750_characters() {
        let allowed = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
        for b in 0..=255u8 {
            assert_eq!(B64TOKEN[usize::from(b)], allowed.contains(&b), "byte {b}");
        }
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn check(values: &[&[u8]], query: Option<&str>) -> Result<String, BearerError> {
        extract_bearer(&headers(values), query, 64).map(|t| t.expose().to_owned())
    }

    use BearerError::Missing;
    use MalformedReason::*;

    /// (Authorization values, query string, expected token or error)
    type Case<'a> = (
        &'a [&'a [u8]],
        Option<&'a str>,
        Result<&'a str, BearerError>,
    );

    // A14, A24 (scheme case-insensitive, query ignored), A20/E4 (400 cases), RFC 6750 §2.1.
    #[test]
    fn bearer_extraction_table() {
        let big = format!("Bearer {}", "a".repeat(65));
        let cases: &[Case<'_>] = &[
            (&[b"Bearer abc.DEF-_~+/=="], None, Ok("abc.DEF-_~+/==")),
            (&[b"bearer abc"], None, Ok("abc")), // A24: scheme is case-insensitive
            (&[b"BEARER   abc"], None, Ok("abc")), // 1*SP
            (&[], None, Err(Missing)),
            (&[], Some("access_token=abc"), Err(Missing)), // A24: query token ignored
            (&[b"Basic dXNlcjpwYXNz"], None, Err(Missing)), // RFC 6750 §3.1: other scheme
            (&[b"Bearerabc"], None, Err(Missing)),         // not the Bearer scheme
            (&[b"Bearer"], None, Err(BearerError::Malformed(EmptyToken))),
            (
                &[b"Bearer    "],
                None,
                Err(BearerError::Malformed(EmptyToken)),
            ),
            (
                &[b"Bearer a", b"Bearer b"],
                None,
                Err(BearerError::Malformed(MultipleAuthorization)),
            ),
            (
                &[b"Bearer a b"],
                None,
                Err(BearerError::Malformed(BadCharacters)),
            ),
            (
                &[b"Bearer a\"b"],
                None,
                Err(BearerError::Malformed(BadCharacters)),
            ),
            (
                &[b"Bearer a=b"],
                None,
                Err(BearerError::Malformed(BadCharacters)),
            ), // '=' only at end
            (
                &[b"Bearer ==="],
                None,
                Err(BearerError::Malformed(BadCharacters)),
            ),
            (
                &[b"Bearer a,b"],
                None,
                Err(BearerError::Malformed(BadCharacters)),
            ),
            (
                &[b"Bearer \xc3\xa9"],
                None,
                Err(BearerError::Malformed(BadCharacters)),
            ),
            (
                &[big.as_bytes()],
                None,
                Err(BearerError::Malformed(TooLarge)),
            ),
            // E4: header plus query token is a token sent two ways.
            (
                &[b"Bearer abc"],
                Some("x=1&access_token=abc"),
                Err(BearerError::Malformed(SentTwoWays)),
            ),
            (
                &[b"Bearer abc"],
                Some("access%5Ftoken=abc"),
                Err(BearerError::Malformed(SentTwoWays)),
            ),
            (&[b"Bearer abc"], Some("x=access_token"), Ok("abc")),
        ];
        for (values, query, want) in cases {
            let got = check(values, *query);
            let want = want.clone().map(str::to_owned);
            assert_eq!(
                got,
                want,
                "{:?} {query:?}",
                values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v))
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn size_cap_applies_before_scheme_parsing() {
        // A huge non-Bearer header is refused as too large, not silently treated as absent.
        let huge = format!("Basic {}", "a".repeat(1000));
        assert_eq!(
            check(&[huge.as_bytes()], None),
            Err(BearerError::Malformed(TooLarge))
        );
        // Exactly at the cap is accepted.
        let at_cap = format!("Bearer {}", "a".repeat(64));
        assert_eq!(check(&[at_cap.as_bytes()], None).unwrap().len(), 64);
    }

    #[test]
    fn reason_codes_are_distinct() {
        let all = [
            EmptyToken,
            MultipleAuthorization,
            BadCharacters,
            TooLarge,
            SentTwoWays,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
