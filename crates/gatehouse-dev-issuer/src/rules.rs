//! Small syntax and secret rules shared by the issuer and its interactive flows (no state).

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use url::Url;

use crate::config::ClientSecret;

/// RFC 8707 §2: "an absolute URI … MUST NOT include a fragment component".
pub(crate) fn check_resource(resource: &str) -> Result<(), &'static str> {
    if resource.contains('#') {
        return Err("has a fragment");
    }
    Url::parse(resource)
        .map(|_| ())
        .map_err(|_| "not an absolute URI")
}

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Constant-time secret check. Digests first so that neither the length nor the contents leak
/// through timing; an unknown client still pays for one comparison.
pub(crate) fn secret_matches(expected: Option<&ClientSecret>, presented: &str) -> bool {
    let presented = digest(&SHA256, presented.as_bytes());
    let expected_digest = digest(&SHA256, expected.map_or("", |s| s.expose()).as_bytes());
    let equal = verify_slices_are_equal(presented.as_ref(), expected_digest.as_ref()).is_ok();
    equal && expected.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_rules() {
        assert!(check_resource("http://127.0.0.1:3000/mcp").is_ok());
        assert!(check_resource("urn:example:api").is_ok());
        assert_eq!(check_resource("/mcp"), Err("not an absolute URI"));
        assert_eq!(check_resource("http://x/mcp#frag"), Err("has a fragment"));
    }

    #[test]
    fn scope_token_grammar() {
        assert!(is_scope_token("invoices:read"));
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(!is_scope_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn secret_comparison() {
        let s = ClientSecret::new("right");
        assert!(secret_matches(Some(&s), "right"));
        assert!(!secret_matches(Some(&s), "wrong"));
        assert!(!secret_matches(Some(&s), "righ"));
        assert!(
            !secret_matches(None, ""),
            "an unknown client never authenticates"
        );
    }
}
