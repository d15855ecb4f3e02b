//! Server-Sent Events: encoding the events the bridge sends, and an incremental decoder
//! (WHATWG rules) for the streams it reads from upstream servers.

use bytes::{BufMut, Bytes, BytesMut};

/// Encode one event. `data` may span lines; each becomes its own `data:` line so that the
/// reader's join (with `\n`) gives back the original text.
pub fn encode(event: Option<&str>, id: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 48);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(event.as_bytes());
        out.put_u8(b'\n');
    }
    if !data.iter().any(|&b| b == b'\n' || b == b'\r') {
        out.put_slice(b"data: ");
        out.put_slice(data);
        out.put_u8(b'\n');
    } else {
        for line in split_lines(data) {
            out.put_slice(b"data: ");
            out.put_slice(line);
            out.put_u8(b'\n');
        }
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// A comment line: keeps proxies and clients from timing an idle stream out.
pub fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {text}\n\n"))
}

/// A priming event (2025-11-25): an id and empty data, which clients use only as a cursor.
pub fn priming(id: &str) -> Bytes {
    Bytes::from(format!("id: {id}\ndata: \n\n"))
}

fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
                Some(line)
            }
            None => {
                done = true;
                Some(rest)
            }
        }
    })
}

/// Buffers larger than this are released once empty.
const SHRINK_ABOVE: usize = 64 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type (`message` when the stream named none).
    pub event: String,
    pub data: Bytes,
    /// The stream's last event id at dispatch time.
    pub id: Option<String>,
}

/// Incremental decoder: feed it chunks as they arrive, take events out.
/// Lines may end in CRLF, LF or CR, even split across chunks.
#[derive(Default)]
pub struct Decoder {
    line: BytesMut,
    /// The previous chunk ended in CR: a leading LF in the next chunk belongs to it.
    after_cr: bool,
    data: BytesMut,
    has_data: bool,
    event: String,
    last_id: Option<String>,
    retry_ms: Option<u64>,
    /// Events that carried no data (priming events) since last asked.
    empty_events: usize,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The last event id seen, including ids of events with empty data (priming events).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection delay the stream asked for, if any.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// How many events with empty data (priming events) passed since the last call.
    pub fn take_empty_events(&mut self) -> usize {
        std::mem::take(&mut self.empty_events)
    }

    /// Bytes of an unfinished line or event held back (to bound memory).
    pub fn buffered(&self) -> usize {
        self.line.len() + self.data.len()
    }

    /// Feed one chunk; complete events are pushed onto `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) {
        if self.after_cr {
            self.after_cr = false;
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
        }
        while let Some(i) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let end = if chunk[i] == b'\r' {
                match chunk.get(i + 1) {
                    Some(b'\n') => i + 2,
                    Some(_) => i + 1,
                    None => {
                        self.after_cr = true;
                        i + 1
                    }
                }
            } else {
                i + 1
            };
            if self.line.is_empty() {
                self.line_done(&chunk[..i], out);
            } else {
                self.line.extend_from_slice(&chunk[..i]);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, out);
            }
            chunk = &chunk[end..];
        }
        self.line.extend_from_slice(chunk);
        // One huge event must not pin its buffer for the life of the stream.
        if self.line.is_empty() && self.line.capacity() > SHRINK_ABOVE {
            self.line = BytesMut::new();
        }
        if self.data.is_empty() && self.data.capacity() > SHRINK_ABOVE {
            self.data = BytesMut::new();
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.put_u8(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"id" if !value.contains(&0) => {
                self.last_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data || self.data.is_empty() {
            // Empty data: nothing is dispatched, but the id (already stored) still counts.
            if self.has_data {
                self.empty_events += 1;
            }
            self.has_data = false;
            self.data.clear();
            return;
        }
        self.has_data = false;
        out.push(Event {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: self.data.split().freeze(),
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> (Vec<Event>, Decoder) {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
        }
        (out, d)
    }

    #[test]
    fn parses_lf_crlf_and_cr_even_split_across_chunks() {
        let (evs, _) = decode_all(&[
            b"event: endpoint\r",
            b"\ndata: /m?x=1\r\n\r",
            b"\ndata: a\rdata: b\r\rdata: c\n\n",
        ]);
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].event, "endpoint");
        assert_eq!(&evs[0].data[..], b"/m?x=1");
        assert_eq!(&evs[1].data[..], b"a\nb");
        assert_eq!(evs[1].event, "message");
        assert_eq!(&evs[2].data[..], b"c");
    }

    #[test]
    fn comments_are_skipped_and_ids_retry_kept() {
        let (evs, d) = decode_all(&[b": ping - now\r\n\r\nretry: 1500\nid: 7\ndata:{}\n\n"]);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].id.as_deref(), Some("7"));
        assert_eq!(&evs[0].data[..], b"{}");
        assert_eq!(d.retry_ms(), Some(1500));
    }

    #[test]
    fn priming_event_updates_id_without_dispatch() {
        let (evs, d) = decode_all(&[b"id: abc\ndata: \n\n", b"retry: x1\n\n"]);
        assert!(evs.is_empty());
        assert_eq!(d.last_event_id(), Some("abc"));
        let mut d = d;
        assert_eq!(d.take_empty_events(), 1);
        assert_eq!(d.retry_ms(), None);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events() {
        let stream = b"id: 1\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n";
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        let (evs, _) = decode_all(&chunks);
        assert_eq!(evs.len(), 1);
        assert_eq!(&evs[0].data[..], b"{\"a\":\n1}");
    }

    #[test]
    fn encode_round_trips_multi_line_data() {
        let data = b"{\n  \"a\": 1\r\n}";
        let frame = encode(Some("message"), Some("3-4"), data);
        let (evs, _) = decode_all(&[&frame]);
        assert_eq!(&evs[0].data[..], b"{\n  \"a\": 1\n}");
        assert_eq!(evs[0].id.as_deref(), Some("3-4"));
        assert_eq!(
            &encode(None, None, b"{}")[..],
            b"data: {}\n\n",
            "single-line data is one data line"
        );
    }
}
