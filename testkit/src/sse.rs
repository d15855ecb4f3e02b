//! A small, independent Server-Sent Events codec.
//!
//! The decoder follows the WHATWG `text/event-stream` rules (CRLF / LF / CR line ends, comments,
//! `data` lines joined with `\n`, `id` without NUL, all-digit `retry`), with one MCP-specific
//! reading taken from the SDK clients: a block whose data is empty is *not* dispatched as an
//! event, but its `id` still moves the cursor (that is the 2025-11-25 priming event). Such a
//! block is still reported as [`SseItem::Undispatched`] so tests can assert on it.
//!
//! This is deliberately separate from the bridge's own codec: the testkit is an independent
//! check of the bridge.

use std::fmt::Write as _;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` field of *this* event, if it carried one (the stream-wide cursor is
    /// [`SseParser::last_event_id`]).
    pub id: Option<String>,
    /// The `event` field; `None` means the default type `message` (see [`SseEvent::event_type`]).
    pub event: Option<String>,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The `retry` field of this event, if it carried a valid one.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The effective event type (`message` when no `event` field was sent).
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// Everything the decoder reports, in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A block with non-empty data.
    Event(SseEvent),
    /// A block that ended with empty data (e.g. a priming event `id: X\ndata: \n\n`): not
    /// dispatched, but `id`/`retry` were applied. `data` is always empty.
    Undispatched(SseEvent),
    /// A comment line (`: text`); one leading space after the colon is removed.
    Comment(String),
}

/// Incremental decoder: feed it arbitrary chunks, get complete items back.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF in the next chunk belongs to it.
    skip_lf: bool,
    /// Nothing decoded yet: a leading BOM must be stripped.
    started: bool,
    // Buffers of the block being read.
    data: String,
    event: Option<String>,
    block_id: Option<String>,
    block_retry: Option<u64>,
    block_has_fields: bool,
    // Stream-wide state.
    last_event_id: Option<String>,
    retry: Option<u64>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id seen on the stream (persists across events, as in EventSource).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The last valid `retry` value seen on the stream.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Decodes a chunk; complete items are appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseItem>) {
        if !self.started && !chunk.is_empty() {
            // A UTF-8 BOM may only appear at the very start of the stream.
            let bom = [0xEF, 0xBB, 0xBF];
            let n = self.line.len() + chunk.len();
            if n < 3 && bom.starts_with(&[&self.line[..], chunk].concat()) {
                self.line.extend_from_slice(chunk);
                return;
            }
            self.started = true;
            let mut head = std::mem::take(&mut self.line);
            head.extend_from_slice(chunk);
            let body = head.strip_prefix(&bom[..]).unwrap_or(&head).to_vec();
            return self.push_lines(&body, out);
        }
        self.push_lines(chunk, out);
    }

    /// Convenience for tests: decode a chunk and return its items.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut out = Vec::new();
        self.push(chunk, &mut out);
        out
    }

    fn push_lines(&mut self, mut chunk: &[u8], out: &mut Vec<SseItem>) {
        if self.skip_lf && !chunk.is_empty() {
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
            self.skip_lf = false;
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line_end = chunk[pos];
            if self.line.is_empty() {
                self.process_line(&chunk[..pos], out);
            } else {
                self.line.extend_from_slice(&chunk[..pos]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
            }
            chunk = &chunk[pos + 1..];
            if line_end == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    // CR at a chunk boundary: the LF may come with the next chunk.
                    None => self.skip_lf = true,
                }
            }
        }
        self.line.extend_from_slice(chunk);
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseItem>) {
        if line.is_empty() {
            return self.dispatch(out);
        }
        let line = String::from_utf8_lossy(line);
        if let Some(comment) = line.strip_prefix(':') {
            let text = comment.strip_prefix(' ').unwrap_or(comment);
            out.push(SseItem::Comment(text.to_string()));
            return;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = Some(value.to_string()),
            "id" => {
                if !value.contains('\0') {
                    self.block_id = Some(value.to_string());
                    self.last_event_id = Some(value.to_string());
                }
            }
            "retry" => {
                if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(ms) = value.parse() {
                        self.block_retry = Some(ms);
                        self.retry = Some(ms);
                    }
                }
            }
            _ => return, // unknown fields are ignored entirely
        }
        self.block_has_fields = true;
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        if !self.block_has_fields {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event = SseEvent {
            id: self.block_id.take(),
            event: self.event.take(),
            data,
            retry: self.block_retry.take(),
        };
        self.block_has_fields = false;
        if event.data.is_empty() {
            out.push(SseItem::Undispatched(event));
        } else {
            out.push(SseItem::Event(event));
        }
    }
}

/// Line terminator used when encoding (TS servers write LF, sse-starlette writes CRLF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    Lf,
    CrLf,
}

impl LineEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnd::Lf => "\n",
            LineEnd::CrLf => "\r\n",
        }
    }
}

/// Encodes one event: `event`, `id`, `retry`, then one `data` line per line of `data`
/// (the field order the TS SDK uses). Empty `data` yields a single `data: ` line.
pub fn encode_event(
    event: Option<&str>,
    id: Option<&str>,
    retry: Option<u64>,
    data: &str,
    le: LineEnd,
) -> String {
    let le = le.as_str();
    let mut s = String::with_capacity(data.len() + 48);
    if let Some(e) = event {
        let _ = write!(s, "event: {e}{le}");
    }
    if let Some(id) = id {
        let _ = write!(s, "id: {id}{le}");
    }
    if let Some(r) = retry {
        let _ = write!(s, "retry: {r}{le}");
    }
    for line in data.split('\n') {
        let _ = write!(s, "data: {line}{le}");
    }
    s.push_str(le);
    s
}

/// Encodes a comment line followed by a blank line.
pub fn encode_comment(text: &str, le: LineEnd) -> String {
    let le = le.as_str();
    format!(": {text}{le}{le}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: Option<&str>, event: Option<&str>, data: &str) -> SseItem {
        SseItem::Event(SseEvent {
            id: id.map(str::to_string),
            event: event.map(str::to_string),
            data: data.to_string(),
            retry: None,
        })
    }

    #[test]
    fn lf_events_and_default_type() {
        let mut p = SseParser::new();
        let items = p.feed(b"event: endpoint\ndata: /messages?sessionId=1\n\ndata: {\"a\":1}\n\n");
        assert_eq!(
            items,
            vec![
                ev(None, Some("endpoint"), "/messages?sessionId=1"),
                ev(None, None, "{\"a\":1}")
            ]
        );
        if let SseItem::Event(e) = &items[1] {
            assert_eq!(e.event_type(), "message");
        }
    }

    #[test]
    fn crlf_and_cr_line_ends_and_comments() {
        let mut p = SseParser::new();
        let items =
            p.feed(b": ping - 2026\r\n\r\nevent: message\r\ndata: x\r\n\r\ndata: y\r\rdata: z\n\n");
        assert_eq!(
            items,
            vec![
                SseItem::Comment("ping - 2026".into()),
                ev(None, Some("message"), "x"),
                ev(None, None, "y"),
                ev(None, None, "z"),
            ]
        );
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.push(b"data: a\r", &mut out);
        p.push(b"\n\r", &mut out);
        p.push(b"\ndata: b\n\n", &mut out);
        assert_eq!(out, vec![ev(None, None, "a"), ev(None, None, "b")]);
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let wire = b"id: 1\r\nevent: message\r\ndata: {\"x\":\r\ndata: 2}\r\n\r\n: c\n\n";
        let mut whole = SseParser::new();
        let expected = whole.feed(wire);
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for b in wire.iter() {
            p.push(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(out, expected);
        assert_eq!(out[0], ev(Some("1"), Some("message"), "{\"x\":\n2}"));
        assert_eq!(p.last_event_id(), Some("1"));
    }

    #[test]
    fn multi_line_data_and_field_without_space_or_colon() {
        let mut p = SseParser::new();
        let items = p.feed(b"data:a\ndata\ndata:  b\n\n");
        assert_eq!(items, vec![ev(None, None, "a\n\n b")]);
    }

    #[test]
    fn priming_event_is_undispatched_but_moves_cursor() {
        let mut p = SseParser::new();
        let items = p.feed(b"id: 7_0\nretry: 500\ndata: \n\nevent: message\ndata: {}\n\n");
        assert_eq!(
            items[0],
            SseItem::Undispatched(SseEvent {
                id: Some("7_0".into()),
                event: None,
                data: String::new(),
                retry: Some(500)
            })
        );
        assert_eq!(items[1], ev(None, Some("message"), "{}"));
        assert_eq!(p.last_event_id(), Some("7_0"));
        assert_eq!(p.retry(), Some(500));
    }

    #[test]
    fn invalid_id_and_retry_are_ignored_unknown_fields_too() {
        let mut p = SseParser::new();
        let items = p.feed(b"id: a\0b\nretry: 1x\nfoo: bar\ndata: d\n\nfoo: only\n\n");
        assert_eq!(items, vec![ev(None, None, "d")]);
        assert_eq!(p.last_event_id(), None);
        assert_eq!(p.retry(), None);
    }

    #[test]
    fn empty_id_resets_cursor_and_blank_lines_alone_do_nothing() {
        let mut p = SseParser::new();
        let items = p.feed(b"\n\n\nid: 3\ndata: a\n\nid\ndata: b\n\n");
        assert_eq!(
            items,
            vec![ev(Some("3"), None, "a"), ev(Some(""), None, "b")]
        );
        assert_eq!(p.last_event_id(), Some(""));
    }

    #[test]
    fn bom_is_stripped_even_when_split() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.push(&[0xEF, 0xBB], &mut out);
        p.push(&[0xBF], &mut out);
        p.push(b"data: a\n\n", &mut out);
        assert_eq!(out, vec![ev(None, None, "a")]);
    }

    #[test]
    fn incomplete_event_is_not_dispatched() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: partial\n").is_empty());
        assert!(p.feed(b"data: more").is_empty());
    }

    #[test]
    fn encode_round_trips() {
        let wire = encode_event(Some("message"), Some("5_1"), None, "a\nb", LineEnd::CrLf)
            + &encode_comment("ping", LineEnd::Lf)
            + &encode_event(None, Some("5_0"), Some(100), "", LineEnd::Lf);
        assert!(wire.starts_with("event: message\r\nid: 5_1\r\ndata: a\r\ndata: b\r\n\r\n"));
        let mut p = SseParser::new();
        let items = p.feed(wire.as_bytes());
        assert_eq!(items[0], ev(Some("5_1"), Some("message"), "a\nb"));
        assert_eq!(items[1], SseItem::Comment("ping".into()));
        assert!(matches!(&items[2], SseItem::Undispatched(e) if e.retry == Some(100)));
    }
}
