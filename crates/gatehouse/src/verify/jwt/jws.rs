//! Compact JWS parsing (RFC 7515 §7.1): telling a JWS from an opaque token, splitting and
//! decoding it into header, claims and signature, before anything is verified.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::verify::InvalidReason;

/// The header fields the verifier reads. Everything else (`jku`, `x5u`, `jwk`, `x5c`, …) is
/// deliberately not even parsed.
#[derive(Deserialize)]
pub(crate) struct JwsHeader {
    pub(super) alg: String,
    #[serde(default)]
    pub(super) typ: Option<String>,
    #[serde(default)]
    pub(super) kid: Option<String>,
    #[serde(default)]
    pub(super) crit: Option<Value>,
    #[serde(default)]
    pub(super) nonce: Option<Value>,
}

/// A compact JWS split and decoded, not yet verified.
pub(crate) struct ParsedJws<'a> {
    pub(super) header: JwsHeader,
    pub(super) claims: Map<String, Value>,
    pub(super) signing_input: &'a str,
    pub(super) signature: &'a str,
}

impl ParsedJws<'_> {
    /// The unverified `iss`, used only to route the token to its issuer's verifier.
    pub(crate) fn unverified_issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

/// Only base64url characters (RFC 7515 §2, no padding).
pub(crate) fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decode_json_object<T: for<'de> Deserialize<'de>>(segment: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    // A derived struct would also accept a JSON array; RFC 7515 wants an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// True when `token` has the shape of a compact JWS: three base64url segments and a header that
/// decodes to a JSON object. Used by the chain to tell JWTs from opaque tokens.
pub(crate) fn looks_like_jws(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !h.is_empty() && is_b64url(h) && decode_json_object::<Map<String, Value>>(h).is_some()
}

/// Splits and decodes a compact JWS (RFC 7515 §7.1).
pub(crate) fn parse_jws(token: &str) -> Result<ParsedJws<'_>, InvalidReason> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(InvalidReason::Malformed)?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(InvalidReason::Malformed)?;
    if [header_b64, payload_b64, signature]
        .iter()
        .any(|s| !is_b64url(s))
        || header_b64.is_empty()
        || payload_b64.is_empty()
    {
        return Err(InvalidReason::Malformed);
    }
    let header: JwsHeader = decode_json_object(header_b64).ok_or(InvalidReason::Malformed)?;
    let claims: UniqueMap = decode_json_object(payload_b64).ok_or(InvalidReason::Malformed)?;
    Ok(ParsedJws {
        header,
        claims: claims.0,
        signing_input,
        signature,
    })
}

/// A base64url segment that decodes to a JSON object without duplicate member names.
pub(crate) fn decode_unique_object(segment: &str) -> Option<Map<String, Value>> {
    decode_json_object::<UniqueMap>(segment).map(|m| m.0)
}

/// A JSON object that refuses duplicate member names (RFC 7519 §4: a parser MUST reject them
/// or keep the last; rejecting removes any doubt about which `aud` or `exp` was meant).
struct UniqueMap(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<UniqueMap, A::Error> {
                let mut m = Map::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    if m.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate claim"));
                    }
                    m.insert(k, v);
                }
                Ok(UniqueMap(m))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_testkit::b64url;

    #[test]
    fn jws_shape_detection() {
        assert!(looks_like_jws(&format!(
            "{}.e30.sig",
            b64url(br#"{"alg":"RS256"}"#)
        )));
        assert!(!looks_like_jws("opaque-token-value"));
        assert!(!looks_like_jws("a.b.c"));
        // Auth0-style JWE: five segments.
        assert!(!looks_like_jws(&format!(
            "{}.a.b.c.d",
            b64url(br#"{"alg":"dir","enc":"A256GCM"}"#)
        )));
    }
}
