//! Opaque keyset-pagination cursors.
//!
//! A cursor is the position of the last row of a page, `(created_at, id)`, in the listing order
//! `created_at DESC, id DESC`. The next page is the rows strictly after it, which an index range
//! scan finds at the same cost on page 1 and page 10,000 (no `OFFSET`).
//!
//! The encoding is base64url of `v1:<created_at>:<id>`. It is not signed: a cursor only moves a
//! position inside the caller's own tenant (every query is tenant-constrained), so a forged one
//! can reveal nothing a legitimate listing would not. It *is* strictly validated, so garbage is a
//! clean error rather than a panic or a surprising query.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::model::{Invoice, is_valid_invoice_id};

/// Longest cursor accepted, in characters (far more than any valid cursor needs).
const MAX_CURSOR_LEN: usize = 256;

/// A position in the invoice listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last row returned.
    pub created_at: i64,
    /// `id` of the last row returned.
    pub id: String,
}

/// A cursor that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl Cursor {
    /// The cursor that continues after `invoice`.
    pub fn after(invoice: &Invoice) -> Self {
        Self {
            created_at: invoice.created_at,
            id: invoice.id.clone(),
        }
    }

    /// The opaque wire form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", self.created_at, self.id))
    }

    /// Parses the wire form.
    pub fn decode(s: &str) -> Result<Self, InvalidCursor> {
        if s.is_empty() || s.len() > MAX_CURSOR_LEN {
            return Err(InvalidCursor);
        }
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| InvalidCursor)?;
        let text = std::str::from_utf8(&raw).map_err(|_| InvalidCursor)?;
        let rest = text.strip_prefix("v1:").ok_or(InvalidCursor)?;
        let (at, id) = rest.split_once(':').ok_or(InvalidCursor)?;
        // `i64::from_str` accepts a leading `+`; the encoder never writes one, so reject it to
        // keep exactly one encoding per position.
        if at.starts_with('+') {
            return Err(InvalidCursor);
        }
        let created_at = at.parse::<i64>().map_err(|_| InvalidCursor)?;
        if !is_valid_invoice_id(id) {
            return Err(InvalidCursor);
        }
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for c in [
            Cursor {
                created_at: 0,
                id: "INV-1".into(),
            },
            Cursor {
                created_at: -5,
                id: "a".into(),
            },
            Cursor {
                created_at: i64::MAX,
                id: "x".repeat(64),
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }
    }

    #[test]
    fn rejects_garbage() {
        let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let long = "A".repeat(MAX_CURSOR_LEN + 1);
        let cases = [
            String::new(),
            "not base64!".to_owned(),
            long,
            enc("v2:1:INV-1"),
            enc("v1:1"),
            enc("v1:x:INV-1"),
            enc("v1:+1:INV-1"),
            enc("v1:99999999999999999999:INV-1"),
            enc("v1:1:"),
            enc("v1:1:INV 1"),
            enc("v1:1:INV-1:extra"),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x00]),
        ];
        for c in cases {
            assert_eq!(Cursor::decode(&c), Err(InvalidCursor), "{c:?}");
        }
    }
}
