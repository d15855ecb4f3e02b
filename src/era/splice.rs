//! A tiny scanner over JSON text that edits one object member in place.
//!
//! The bridge never re-serialises a body (DESIGN.md): where the era adapters must add or
//! replace a field (`params._meta` keys, `inputResponses`, a new `id`), they splice the
//! minimum. Every other byte — key order, whitespace, number formatting, unknown fields —
//! stays as the sender wrote it. The text is validated as JSON once (serde_json) before
//! scanning, so the scanner itself can assume well-formed input.

use std::ops::Range;

use serde::de::IgnoredAny;

/// Why a splice could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpliceError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("`{0}` is not a JSON object")]
    NotAnObject(&'static str),
}

/// One `"key": value` member of an object, as byte ranges into the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The decoded key (escapes resolved), for comparison.
    pub key: String,
    /// The key's quoted text, quotes included.
    pub key_span: Range<usize>,
    /// The value's text.
    pub value: Range<usize>,
}

/// Check that `text` is one JSON value, so the scanner below may trust its shape.
pub fn validate(text: &str) -> Result<(), SpliceError> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| SpliceError::NotJson(e.to_string()))
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// End (exclusive) of the string starting at the quote `s[i]`.
fn string_end(s: &[u8], mut i: usize) -> usize {
    i += 1;
    while s[i] != b'"' {
        i += if s[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// End (exclusive) of the value starting at `s[i]` (no leading whitespace).
pub fn value_end(s: &[u8], i: usize) -> usize {
    match s[i] {
        b'"' => string_end(s, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match s[j] {
                    b'"' => {
                        j = string_end(s, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        // Numbers and the literals true/false/null run to the next delimiter.
        _ => {
            let mut j = i;
            while j < s.len() && !matches!(s[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            j
        }
    }
}

/// The members of the object whose `{` is at `open`, and the index of its `}`.
pub fn members(text: &str, open: usize) -> (Vec<Member>, usize) {
    let s = text.as_bytes();
    debug_assert_eq!(s[open], b'{');
    let mut out = Vec::new();
    let mut i = skip_ws(s, open + 1);
    if s[i] == b'}' {
        return (out, i);
    }
    loop {
        let key_end = string_end(s, i);
        let key: String = serde_json::from_str(&text[i..key_end]).expect("validated key");
        let colon = skip_ws(s, key_end);
        let v = skip_ws(s, colon + 1);
        let v_end = value_end(s, v);
        out.push(Member {
            key,
            key_span: i..key_end,
            value: v..v_end,
        });
        let next = skip_ws(s, v_end);
        if s[next] == b'}' {
            return (out, next);
        }
        i = skip_ws(s, next + 1);
    }
}

/// The value span of `key` in the object at `open` (the last one if the key repeats, as
/// serde_json reads it).
pub fn find(text: &str, open: usize, key: &str) -> Option<Range<usize>> {
    members(text, open)
        .0
        .into_iter()
        .rev()
        .find(|m| m.key == key)
        .map(|m| m.value)
}

/// The index of the first non-whitespace byte: where the top-level value starts.
pub fn root(text: &str) -> usize {
    skip_ws(text.as_bytes(), 0)
}

/// Set `key` to `value_json` in the object at `open`: replace the value in place when the key
/// exists, else append `"key":value` as the last member. Returns the new text.
pub fn set(text: &str, open: usize, key: &str, value_json: &str) -> String {
    let (members, close) = members(text, open);
    if let Some(m) = members.iter().rev().find(|m| m.key == key) {
        return [&text[..m.value.start], value_json, &text[m.value.end..]].concat();
    }
    let key_json = serde_json::to_string(key).expect("a string serialises");
    match members.last() {
        Some(last) => [
            &text[..last.value.end],
            ",",
            &key_json,
            ":",
            value_json,
            &text[last.value.end..],
        ]
        .concat(),
        None => [&text[..close], &key_json, ":", value_json, &text[close..]].concat(),
    }
}

/// Remove every `key` member from the object at `open` (with its separating comma).
pub fn remove(text: &str, open: usize, key: &str) -> String {
    let mut out = text.to_owned();
    // Work from the end so earlier spans stay valid.
    loop {
        let (members, _) = self::members(&out, open);
        let Some(idx) = members.iter().rposition(|m| m.key == key) else {
            return out;
        };
        let span = if idx > 0 {
            // `,"key":value` — from the end of the previous value.
            members[idx - 1].value.end..members[idx].value.end
        } else if members.len() > 1 {
            // `"key":value,` — up to the next key.
            members[0].key_span.start..members[1].key_span.start
        } else {
            members[0].key_span.start..members[0].value.end
        };
        out.replace_range(span, "");
    }
}

/// Ensure the member `key` of the object at `open` is an object, creating `"key":{}` when it
/// is absent, and return the (possibly new) text and the index of that object's `{`.
pub fn object_member(
    text: &str,
    open: usize,
    key: &'static str,
) -> Result<(String, usize), SpliceError> {
    match find(text, open, key) {
        Some(span) if text.as_bytes()[span.start] == b'{' => Ok((text.to_owned(), span.start)),
        Some(_) => Err(SpliceError::NotAnObject(key)),
        None => {
            let edited = set(text, open, key, "{}");
            let span = find(&edited, open, key).expect("just inserted");
            Ok((edited, span.start))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_nested_object_with_tricky_strings() {
        let t = r#" { "a" : 1.50e3 , "b\"}" : {"x":[1,{"y":"]}"}]}, "c":null } "#;
        validate(t).unwrap();
        let (ms, close) = members(t, root(t));
        let keys: Vec<_> = ms.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "b\"}", "c"]);
        assert_eq!(&t[ms[0].value.clone()], "1.50e3");
        assert_eq!(&t[ms[1].value.clone()], r#"{"x":[1,{"y":"]}"}]}"#);
        assert_eq!(&t[ms[2].value.clone()], "null");
        assert_eq!(t.as_bytes()[close], b'}');
    }

    #[test]
    fn set_replaces_in_place_and_appends_otherwise() {
        let t = r#"{"z":1, "a":  2.0 }"#;
        assert_eq!(set(t, 0, "a", "3"), r#"{"z":1, "a":  3 }"#);
        assert_eq!(set(t, 0, "n", "\"v\""), r#"{"z":1, "a":  2.0,"n":"v" }"#);
        assert_eq!(set("{ }", 0, "k", "{}"), r#"{ "k":{}}"#);
    }

    #[test]
    fn set_escapes_a_key_that_needs_it() {
        assert_eq!(set("{}", 0, "a\"b", "1"), r#"{"a\"b":1}"#);
    }

    #[test]
    fn remove_takes_the_right_comma() {
        assert_eq!(remove(r#"{"a":1,"b":2,"c":3}"#, 0, "b"), r#"{"a":1,"c":3}"#);
        assert_eq!(remove(r#"{"a":1, "b":2}"#, 0, "a"), r#"{"b":2}"#);
        assert_eq!(remove(r#"{"a":1,"b":2}"#, 0, "b"), r#"{"a":1}"#);
        assert_eq!(remove(r#"{ "a":1 }"#, 0, "a"), r#"{  }"#);
        assert_eq!(remove(r#"{"a":1,"a":2}"#, 0, "a"), r#"{}"#);
        assert_eq!(remove(r#"{"a":1}"#, 0, "x"), r#"{"a":1}"#);
    }

    #[test]
    fn object_member_creates_or_refuses() {
        let (t, open) = object_member(r#"{"p":{"k":1}}"#, 0, "p").unwrap();
        assert_eq!(t, r#"{"p":{"k":1}}"#);
        assert_eq!(open, 5);
        let (t, open) = object_member(r#"{"m":"x"}"#, 0, "p").unwrap();
        assert_eq!(t, r#"{"m":"x","p":{}}"#);
        assert_eq!(&t[open..open + 2], "{}");
        assert_eq!(
            object_member(r#"{"p":[1]}"#, 0, "p"),
            Err(SpliceError::NotAnObject("p"))
        );
    }

    #[test]
    fn validate_rejects_broken_json() {
        assert!(matches!(validate(r#"{"a":"#), Err(SpliceError::NotJson(_))));
    }
}
