//! Invariant: every requirement id cited in code resolves in `docs/requirements.md`.
//!
//! Comments across `crates/` justify code and tests with requirement ids ("A22", "E4", …) and
//! with short names of specification documents ("AUTH26 §Refresh Tokens", "OA21 §5.1"). This
//! test walks every `.rs` file under the workspace's `crates/` directory and fails, listing each
//! offender with `file:line`, when
//! - a cited requirement id has no row in `docs/requirements.md`;
//! - a cited document abbreviation has no row in that file's abbreviation table;
//! - the document gives the same id (or abbreviation) two rows;
//! - a test the document names (`` `crates/<path>.rs::<function>` ``) does not exist.
//!
//! # Extraction rule
//!
//! Source text is split by a small Rust lexer into line comments (`//`, `///`, `//!`), block
//! comments, string literals (plain, byte, C, raw) and code; char literals and lifetimes are
//! told apart so that a `'"'` never opens a string.
//!
//! A **requirement id** is one upper-case letter from `A` to `E` followed by one or two digits,
//! the first not `0`, standing alone: the characters on both sides (if any) are neither ASCII
//! letters, digits nor `_`. So `ES256`, `RS256`, `HS256`, `PS384`, `P256`, `SHA256`, `SEC1`,
//! `U2F`, `V4`, `E2E` or `0xC3` never match. `B64` (this workspace's name for the base64 engine)
//! has the shape of an id and is excluded by name. A range `X<m>–X<n>` or `X<m>-X<n>` (same
//! letter, en dash or hyphen, no spaces, m < n) cites every id from `X<m>` to `X<n>`.
//! - In **comments** every such token is a citation (the code cites bare ids: `// A14, A15:`,
//!   `(RFC 6750 §3.1, A14)`, `spec rows A23, A30`, `spec-requirements A36`).
//! - In **string literals** ids count only in a list made of ids alone: either the whole literal
//!   (the `rows` of the token-matrix cases, `"A21 A25 E5-E9 E12"`) or a parenthesised group
//!   (a test label such as `"header + query token (…)"`). List items are separated by spaces,
//!   commas or `/`. Other text in strings (URLs, percent-escapes, key ids) is never read.
//!
//! A **document abbreviation** is two or more upper-case letters followed by two digits (`OA21`,
//! `AUTH26`, `SBP25`) or by four digits starting with `0` (`AUTH0618`), standing alone as above,
//! in a comment or a string literal, and either followed by ` §` / `§` (a section reference) or
//! preceded by `MCP `. Algorithm names (`ES256`, three digits) and `RFC9728` cannot match.
//!
//! In `docs/requirements.md` a table row whose first cell is exactly an id is a requirement row,
//! and one whose first cell is exactly an abbreviation is an abbreviation row.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Tokens with the shape of an id that are not requirement ids.
const NOT_IDS: &[&str] = &["B64"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Comment,
    Str,
}

/// A comment or string literal: its kind, the line it starts on (1-based) and its text.
#[derive(Debug)]
struct Piece {
    kind: Kind,
    line: usize,
    text: String,
}

/// A comment piece starting on `line`.
fn comment(line: usize, text: String) -> Piece {
    Piece {
        kind: Kind::Comment,
        line,
        text,
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits Rust source into comments and string literals (code is dropped). Block comments nest;
/// a line comment ends at the newline. Good enough for well-formed code, which is all it sees.
fn lex(src: &str) -> Vec<Piece> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    // Advances over `n` chars, counting newlines.
    let bump = |i: &mut usize, line: &mut usize, n: usize| {
        for _ in 0..n {
            if *i < s.len() && s[*i] == '\n' {
                *line += 1;
            }
            *i += 1;
        }
    };
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        let prev_ident = i > 0 && is_ident(s[i - 1]);
        if c == '/' && next == Some('/') {
            let start = line;
            let mut text = String::new();
            while i < s.len() && s[i] != '\n' {
                text.push(s[i]);
                i += 1;
            }
            out.push(comment(start, text));
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            let mut text = String::new();
            let mut start = line;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    bump(&mut i, &mut line, 2);
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    bump(&mut i, &mut line, 2);
                    if depth == 0 {
                        break;
                    }
                } else if s[i] == '\n' {
                    // One piece per line, so that findings carry the right line number.
                    out.push(comment(start, std::mem::take(&mut text)));
                    bump(&mut i, &mut line, 1);
                    start = line;
                } else {
                    text.push(s[i]);
                    i += 1;
                }
            }
            out.push(comment(start, text));
        } else if !prev_ident && (c == 'r' || ((c == 'b' || c == 'c') && next == Some('r'))) && {
            // Raw string: `r`, `br` or `cr`, then `#`*, then `"`.
            let mut j = if c == 'r' { i + 1 } else { i + 2 };
            while s.get(j) == Some(&'#') {
                j += 1;
            }
            s.get(j) == Some(&'"')
        } {
            let open = if c == 'r' { i + 1 } else { i + 2 };
            let mut hashes = 0;
            while s[open + hashes] == '#' {
                hashes += 1;
            }
            let start = line;
            let n = open + hashes + 1 - i;
            bump(&mut i, &mut line, n);
            let mut text = String::new();
            while i < s.len() {
                if s[i] == '"' && (1..=hashes).all(|k| s.get(i + k) == Some(&'#')) {
                    bump(&mut i, &mut line, 1 + hashes);
                    break;
                }
                text.push(s[i]);
                bump(&mut i, &mut line, 1);
            }
            out.push(Piece {
                kind: Kind::Str,
                line: start,
                text,
            });
        } else if c == '"' {
            // Plain, byte (`b"`) and C (`c"`) strings: the prefix letter was skipped as code.
            let start = line;
            bump(&mut i, &mut line, 1);
            let mut text = String::new();
            while i < s.len() && s[i] != '"' {
                if s[i] == '\\' {
                    text.push(s[i]);
                    bump(&mut i, &mut line, 1);
                }
                if i < s.len() {
                    text.push(s[i]);
                    bump(&mut i, &mut line, 1);
                }
            }
            bump(&mut i, &mut line, 1);
            out.push(Piece {
                kind: Kind::Str,
                line: start,
                text,
            });
        } else if c == '\'' {
            if next == Some('\\') {
                // Escaped char literal: skip to the closing quote after the escape.
                let mut j = i + 2;
                while j < s.len() && s[j] != '\'' {
                    j += 1;
                }
                // `'\''`: the quote right after the backslash is the escaped one.
                if j == i + 2 {
                    j += 1;
                    while j < s.len() && s[j] != '\'' {
                        j += 1;
                    }
                }
                let n = j + 1 - i;
                bump(&mut i, &mut line, n);
            } else if s.get(i + 2) == Some(&'\'') {
                bump(&mut i, &mut line, 3); // 'x'
            } else {
                bump(&mut i, &mut line, 1); // lifetime or label
            }
        } else {
            bump(&mut i, &mut line, 1);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Ids and abbreviations

/// An id token at the start of `t` (`A` to `E`, one or two digits, no leading zero): its letter,
/// number and length in bytes. Boundaries are checked by the caller.
fn id_at(t: &[u8]) -> Option<(u8, u32, usize)> {
    let letter = *t.first()?;
    if !(b'A'..=b'E').contains(&letter) {
        return None;
    }
    let digits = t[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=2).contains(&digits) || t[1] == b'0' {
        return None;
    }
    let n = std::str::from_utf8(&t[1..1 + digits]).ok()?.parse().ok()?;
    Some((letter, n, 1 + digits))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn id_name(letter: u8, n: u32) -> String {
    format!("{}{n}", letter as char)
}

/// Every standalone id in `text`, with ranges expanded.
fn ids_in(text: &str) -> Vec<String> {
    let t = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let boundary_before = i == 0 || !is_ident_byte(t[i - 1]);
        let Some((letter, n, len)) = id_at(&t[i..]).filter(|_| boundary_before) else {
            i += 1;
            continue;
        };
        let end = i + len;
        if t.get(end).is_some_and(|&b| is_ident_byte(b)) {
            i = end;
            continue;
        }
        let name = id_name(letter, n);
        if NOT_IDS.contains(&name.as_str()) {
            i = end;
            continue;
        }
        // A range: `-` or `–` (U+2013, three bytes), then an id of the same letter.
        let dash = if t.get(end) == Some(&b'-') {
            1
        } else if t[end..].starts_with("–".as_bytes()) {
            3
        } else {
            0
        };
        if dash > 0
            && let Some((l2, m, len2)) = id_at(&t[end + dash..])
            && l2 == letter
            && m > n
            && !t.get(end + dash + len2).is_some_and(|&b| is_ident_byte(b))
        {
            out.extend((n..=m).map(|k| id_name(letter, k)));
            i = end + dash + len2;
            continue;
        }
        out.push(name);
        i = end;
    }
    out
}

/// The ids of `list` when it consists of ids (and ranges) only, separated by spaces, commas or
/// `/`; `None` otherwise.
fn id_list(list: &str) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    let mut any = false;
    for item in list
        .split(|c: char| c.is_whitespace() || c == ',' || c == '/')
        .filter(|s| !s.is_empty())
    {
        let found = ids_in(item);
        // The item must be exactly one id or one range.
        let (first, last) = (found.first()?, found.last()?);
        let exact =
            item == first || item == format!("{first}-{last}") || item == format!("{first}–{last}");
        if !exact {
            return None;
        }
        ids.extend(found);
        any = true;
    }
    any.then_some(ids)
}

/// The ids a string literal cites: the whole literal as an id list, or parenthesised id lists.
fn ids_in_string(text: &str) -> Vec<String> {
    if let Some(ids) = id_list(text.trim()) {
        return ids;
    }
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('(') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(')') else { break };
        if let Some(ids) = id_list(&after[..close]) {
            out.extend(ids);
        }
        rest = &after[close + 1..];
    }
    out
}

/// Is `t` (a whole token) shaped like a document abbreviation: two or more upper-case letters,
/// then two digits (a year: `AUTH26`) or four digits starting with `0` (a month and day:
/// `AUTH0618`)?
fn abbrev_shaped(t: &str) -> bool {
    let letters = t.bytes().take_while(u8::is_ascii_uppercase).count();
    let digits = &t[letters..];
    letters >= 2
        && (digits.len() == 2 || (digits.len() == 4 && digits.starts_with('0')))
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Document abbreviations cited in `text`: abbreviation-shaped tokens followed by `§` (after at
/// most one space) or preceded by `MCP `.
fn abbrevs_in(text: &str) -> Vec<String> {
    let t = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if !is_ident_byte(t[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < t.len() && is_ident_byte(t[i]) {
            i += 1;
        }
        let token = &text[start..i];
        if !abbrev_shaped(token) {
            continue;
        }
        let after = &text[i..];
        let section = after.starts_with('§') || after.starts_with(" §");
        let mcp = text[..start].ends_with("MCP ");
        if section || mcp {
            out.push(token.to_owned());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The document

struct Doc {
    /// Requirement id → table rows that give it (more than one is an error).
    ids: BTreeMap<String, Vec<usize>>,
    /// Abbreviation → table rows that give it.
    abbrevs: BTreeMap<String, Vec<usize>>,
    /// `(line, path, function)` for every `` `crates/….rs::function` `` reference.
    tests: Vec<(usize, String, String)>,
}

fn is_exact_id(cell: &str) -> bool {
    id_at(cell.as_bytes()).is_some_and(|(_, _, len)| len == cell.len())
}

fn parse_doc(text: &str) -> Doc {
    let mut doc = Doc {
        ids: BTreeMap::new(),
        abbrevs: BTreeMap::new(),
        tests: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if let Some(row) = line.trim_start().strip_prefix('|') {
            let first = row.split('|').next().unwrap_or_default().trim();
            if is_exact_id(first) {
                doc.ids.entry(first.to_owned()).or_default().push(n);
            } else if abbrev_shaped(first) {
                doc.abbrevs.entry(first.to_owned()).or_default().push(n);
            }
        }
        for quoted in line.split('`').skip(1).step_by(2) {
            if let Some((path, func)) = quoted.split_once(".rs::")
                && path.starts_with("crates/")
                && !func.is_empty()
                && func.chars().all(is_ident)
            {
                doc.tests.push((n, format!("{path}.rs"), func.to_owned()));
            }
        }
    }
    doc
}

fn load_doc() -> Doc {
    let path = workspace().join("docs/requirements.md");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_doc(&text)
}

// ---------------------------------------------------------------------------------------------
// Walking the sources

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A citation: what was cited and where (`crates/…:line`).
struct Cited {
    name: String,
    at: String,
}

/// Every requirement id and document abbreviation cited under `crates/`.
fn citations() -> (Vec<Cited>, Vec<Cited>) {
    let root = workspace();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    assert!(files.len() > 50, "found only {} .rs files", files.len());
    let (mut ids, mut abbrevs) = (Vec::new(), Vec::new());
    for file in files {
        let src = fs::read_to_string(&file).unwrap();
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for piece in lex(&src) {
            let at = format!("{rel}:{}", piece.line);
            let found = match piece.kind {
                Kind::Comment => ids_in(&piece.text),
                Kind::Str => ids_in_string(&piece.text),
            };
            ids.extend(found.into_iter().map(|name| Cited {
                name,
                at: at.clone(),
            }));
            abbrevs.extend(abbrevs_in(&piece.text).into_iter().map(|name| Cited {
                name,
                at: at.clone(),
            }));
        }
    }
    (ids, abbrevs)
}

/// Failure lines for citations of names the document does not define.
fn unresolved(cited: &[Cited], defined: &BTreeMap<String, Vec<usize>>) -> Vec<String> {
    cited
        .iter()
        .filter(|c| !defined.contains_key(&c.name))
        .map(|c| format!("  {} cited at {}", c.name, c.at))
        .collect()
}

/// Fails with `what` and one line per finding, unless there are none.
#[track_caller]
fn assert_none(findings: &[String], what: &str) {
    assert!(findings.is_empty(), "{what}:\n{}", findings.join("\n"));
}

fn duplicates(what: &str, defined: &BTreeMap<String, Vec<usize>>) -> Vec<String> {
    defined
        .iter()
        .filter(|(_, rows)| rows.len() > 1)
        .map(|(name, rows)| format!("  {what} {name} has rows on lines {rows:?}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_cited_requirement_id_has_a_row() {
    let doc = load_doc();
    assert!(doc.ids.len() > 50, "only {} rows parsed", doc.ids.len());
    let (ids, _) = citations();
    let distinct: BTreeSet<&str> = ids.iter().map(|c| c.name.as_str()).collect();
    eprintln!(
        "{} citations of {} distinct requirement ids; {} rows in docs/requirements.md",
        ids.len(),
        distinct.len(),
        doc.ids.len()
    );
    assert_none(
        &unresolved(&ids, &doc.ids),
        "requirement ids cited in code without a row in docs/requirements.md",
    );
}

#[test]
fn every_cited_document_abbreviation_is_listed() {
    let doc = load_doc();
    let (_, abbrevs) = citations();
    assert_none(
        &unresolved(&abbrevs, &doc.abbrevs),
        "document abbreviations cited in code but missing from docs/requirements.md",
    );
}

#[test]
fn document_has_no_duplicate_rows() {
    let doc = load_doc();
    let mut dups = duplicates("requirement id", &doc.ids);
    dups.extend(duplicates("abbreviation", &doc.abbrevs));
    assert_none(&dups, "docs/requirements.md gives these more than one row");
}

#[test]
fn tests_named_by_the_document_exist() {
    let doc = load_doc();
    assert!(
        doc.tests.len() > 50,
        "only {} test references",
        doc.tests.len()
    );
    let root = workspace();
    let mut missing = Vec::new();
    for (line, path, func) in &doc.tests {
        let found = fs::read_to_string(root.join(path)).is_ok_and(|src| defines_fn(&src, func));
        if !found {
            missing.push(format!("  line {line}: {path}::{func}"));
        }
    }
    assert_none(
        &missing,
        "docs/requirements.md names tests that do not exist",
    );
}

/// Does `src` define a function `name` (`fn name(` or `fn name<`)?
fn defines_fn(src: &str, name: &str) -> bool {
    src.match_indices(&format!("fn {name}"))
        .any(|(i, m)| matches!(src[i + m.len()..].chars().next(), Some('(' | '<')))
}

// The rule itself, on the shapes the code uses and on the look-alikes it must not take.
#[test]
fn extraction_rule() {
    let ids = |s: &str| ids_in(s).join(" ");
    assert_eq!(ids("// A14, A15: no token"), "A14 A15");
    assert_eq!(ids("(RFC 6750 §3.1, A14)"), "A14");
    assert_eq!(
        ids("A17/A18 per-tool policy input; B17 header"),
        "A17 A18 B17"
    );
    assert_eq!(
        ids("// A3–A12, A29, E19"),
        "A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A29 E19"
    );
    assert_eq!(ids("E5-E9"), "E5 E6 E7 E8 E9");
    assert_eq!(ids("spec-requirements A36"), "A36");
    assert_eq!(
        ids("ES256 RS256 HS256 PS384 P256 SHA256 SEC1 U2F V4 E2E 0xC3 A0 A123"),
        ""
    );
    assert_eq!(ids("B64 engine"), "");
    assert_eq!(ids("__A1 A1_ A1b"), "");

    let strs = |s: &str| ids_in_string(s).join(" ");
    assert_eq!(strs("A21 A25 E5-E9 E12"), "A21 A25 E5 E6 E7 E8 E9 E12");
    assert_eq!(strs("header + query token (E4)"), "E4");
    assert_eq!(strs("client%3Aid:s3cr%3At+%C3%A9"), "");
    assert_eq!(strs("the E4 case"), "");
    assert_eq!(strs("K1"), "");

    let abbrevs = |s: &str| abbrevs_in(s).join(" ");
    assert_eq!(abbrevs("(OA21 §5.3.2, A20)"), "OA21");
    assert_eq!(abbrevs("MCP AUTH26 §Refresh Tokens"), "AUTH26");
    assert_eq!(abbrevs("non-empty (MCP ASD26, A4)"), "ASD26");
    assert_eq!(abbrevs("ES256 §3 and HS256, RFC 9728 §3.3"), "");
    // Built at run time so that this check is not itself a citation of AUTH-0618.
    let dated = format!("RFC9728 §3.3, AUTH{} §Token Handling", "0618");
    assert_eq!(abbrevs(&dated), "AUTH0618");

    // The lexer: a `"` in a char literal opens no string; `//` in a string is no comment.
    let pieces = lex("let q = '\"'; // A22\nlet u = \"https://x\"; /* B2 */ let r = r#\"E4\"#;");
    let found: Vec<_> = pieces
        .iter()
        .map(|p| (p.kind, p.line, p.text.trim()))
        .collect();
    assert_eq!(
        found,
        [
            (Kind::Comment, 1, "// A22"),
            (Kind::Str, 2, "https://x"),
            (Kind::Comment, 2, "B2"),
            (Kind::Str, 2, "E4"),
        ]
    );
}
