//! The field formatter of the human-readable log lines: what `tracing-subscriber`'s default
//! writes without colours, cheaper, and safe against forged lines.
//!
//! - **Cheaper.** The default formats every `&str` field through `str`'s `Debug`, which checks
//!   each character for escapes one by one, and wraps every field name in (empty) colour styles.
//!   Here a string that needs no escape (printable ASCII without `"` or `\`, what ids, subjects,
//!   tenants and outcomes are) is copied between quotes in one write, and anything else falls back
//!   to `Debug`: the bytes written are the default's.
//! - **Safe.** The default writes `Display` fields (`field = %value`) as they are. A caller who
//!   controls such a value — a tool name is one — could put a newline in it and forge a log line.
//!   Here control characters in any field value are escaped (`\n`, `\x1b`, `\u{85}`, …), as
//!   `Debug` already does for strings; the message keeps the default's escapes of terminal
//!   control sequences.
//!
//! The audit line, written on every `tools/call`, is the one that pays for this (`bench/README.md`,
//! the observability step).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// `FormatFields` for the plain-text lines (field names are never coloured).
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Fields {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Fields<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    /// `name=` after a separating space, as the default writes it (`r#` raw names unprefixed).
    fn name(&mut self, field: &Field) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        if name == "message" {
            return Ok(());
        }
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if field.name() == "message" {
            return self.record_debug(field, &format_args!("{value}"));
        }
        self.result = self.name(field).and_then(|()| {
            if value
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
            {
                // What `<str as Debug>` writes for such a string, in three writes.
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            } else {
                write!(Escaping(&mut self.writer, Escape::Controls), "{value:?}")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        // Metadata of `log` records, already written by the event formatter.
        if field.name().starts_with("log.") {
            return;
        }
        let escape = if field.name() == "message" {
            Escape::Terminal
        } else {
            Escape::Controls
        };
        self.result = self
            .name(field)
            .and_then(|()| write!(Escaping(&mut self.writer, escape), "{value:?}"));
    }
}

/// Which characters [`Escaping`] rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// The default formatter's message escapes: ESC, BEL, BS, FF, DEL and C1 controls.
    Terminal,
    /// Every C0 control, DEL and C1 control: nothing in a value can end the line or drive a
    /// terminal.
    Controls,
}

/// A writer that escapes control characters on their way through; a chunk without any is
/// written whole.
struct Escaping<'a, W: fmt::Write>(&'a mut W, Escape);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // C1 controls are U+0080..U+009F, encoded 0xC2 0x80..0x9F: a 0xC2 byte sends the chunk
        // the slow way, as does any byte below 0x20 or DEL.
        if !s.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
            return self.0.write_str(s);
        }
        for ch in s.chars() {
            let c = ch as u32;
            let escaped = match self.1 {
                Escape::Terminal => matches!(ch, '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f'),
                Escape::Controls => c < 0x20 || c == 0x7f,
            };
            if escaped {
                write!(self.0, "\\x{c:02x}")?;
            } else if (0x80..=0x9f).contains(&c) {
                write!(self.0, "\\u{{{c:x}}}")?;
            } else {
                self.0.write_char(ch)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// The lines `log` writes with the default field formatter and with [`PlainFields`].
    fn both(log: impl Fn()) -> (String, String) {
        let run = |plain: bool| {
            let buf = Buf::default();
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(buf.clone())
                .with_ansi(false)
                .without_time();
            let subscriber = tracing_subscriber::registry();
            if plain {
                let s = subscriber.with(layer.fmt_fields(PlainFields));
                tracing::subscriber::with_default(s, &log);
            } else {
                tracing::subscriber::with_default(subscriber.with(layer), &log);
            }
            String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
        };
        (run(false), run(true))
    }

    #[test]
    fn writes_what_the_default_writes() {
        let (default, plain) = both(|| {
            let span = tracing::info_span!("request", request_id = "0af7-x", method = %"POST", path = "/mcp");
            let _g = span.enter();
            for s in [
                "alice",
                "",
                "it's",
                "a \"quoted\" one",
                "back\\slash",
                "naïve ü",
                "tab\there",
                "日本",
            ] {
                tracing::info!(
                    target: "gatehouse::audit",
                    tool = %"lookup_invoice",
                    subject = s,
                    tenant = Some("acme"),
                    count = 3_u64,
                    ok = true,
                    r#type = "x",
                    "tools/call {}", 7
                );
            }
            tracing::warn!(error = ?std::io::Error::other("boom"), "a failure");
        });
        assert!(default.contains("subject=\"alice\""), "{default}");
        assert_eq!(plain, default);
    }

    /// What a caller controls cannot end a line or drive a terminal, in any kind of field.
    #[test]
    fn control_characters_are_escaped_in_every_value() {
        let forged =
            "x\nINFO gatehouse::audit: tools/call tool=admin outcome=\"allowed\"\x1b[2J\u{85}";
        let (default, plain) = both(|| {
            tracing::info!(tool = %forged, subject = forged, detail = ?forged, "tools/call");
        });
        assert_eq!(
            default.lines().count(),
            2,
            "the default is forgeable: {default}"
        );
        assert_eq!(plain.lines().count(), 1, "{plain}");
        assert!(plain.contains(r"tool=x\x0aINFO"), "{plain}");
        assert!(
            plain.contains(r"subject=\x22") || plain.contains(r#"subject="x\nINFO"#),
            "{plain}"
        );
        assert!(
            !plain.contains('\x1b') && !plain.contains('\u{85}'),
            "{plain}"
        );
        // Messages keep the default's escapes and nothing more.
        let (default, plain) = both(|| tracing::info!("bell \x07 and tab\t"));
        assert_eq!(plain, default);
    }
}
