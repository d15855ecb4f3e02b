//! A fuzz harness on stable Rust: a seeded PRNG mutates a corpus of real messages and every
//! front-door parser is checked against invariants — it never panics, a body that parses
//! keeps its exact bytes, a forwarded value that is accepted cannot move the endpoint to
//! another host, and the SSE decoder gives the same events however its input is chunked.
//!
//! Runs briefly with `cargo test` (fixed seed). Longer: `make fuzz`, or
//! `FUZZ_ITERATIONS=1000000 FUZZ_SEED=7 cargo test --lib fuzz:: -- --nocapture`.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use url::{Host, Url};

use crate::downstream::{body, forwarded, legacy_sse, parse_host, HostAllowList};
use crate::jsonrpc::{self, Body, Message};
use crate::sse::{self, Decoder, Event};

/// Per target, when `FUZZ_ITERATIONS` is not set: a few seconds for all of them.
const DEFAULT_ITERATIONS: u64 = 20_000;
const DEFAULT_SEED: u64 = 0x6d63_702d_6272_6964;

fn iterations() -> u64 {
    env_u64("FUZZ_ITERATIONS").unwrap_or(DEFAULT_ITERATIONS)
}

fn seed() -> u64 {
    env_u64("FUZZ_SEED").unwrap_or(DEFAULT_SEED)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// SplitMix64: tiny, seedable, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the grammars under test.
const INTERESTING: &[u8] = b"\"\\[]{}:,\r\n/.%?#@ \t\x00\x7f\xff0-e_";

fn mutate(rng: &mut Rng, corpus: &[&[u8]], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => input[rng.below(len)] ^= 1 << rng.below(8),
            1 if len > 0 => input[rng.below(len)] = INTERESTING[rng.below(INTERESTING.len())],
            2 => input.insert(
                rng.below(len + 1),
                INTERESTING[rng.below(INTERESTING.len())],
            ),
            3 if len > 0 => {
                let at = rng.below(len);
                let n = rng.below((len - at).min(16)) + 1;
                input.drain(at..at + n);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = rng.below((len - at).min(32)) + 1;
                let piece = input[at..at + n].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, piece);
            }
            5 => {
                let other = corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let to = rng.below(input.len() + 1);
                input.splice(to..to, other[from..].iter().copied().take(64));
            }
            _ => input.truncate(rng.below(len + 1)),
        }
    }
}

/// Run `check` on `iterations()` mutants of the corpus; a panic names the input.
fn run(target: &str, corpus: &[&[u8]], mut check: impl FnMut(&[u8])) {
    let (n, seed) = (iterations(), seed());
    let mut rng = Rng(seed ^ target.len() as u64);
    for i in 0..n {
        let mut input = corpus[rng.below(corpus.len())].to_vec();
        if i >= corpus.len() as u64 {
            mutate(&mut rng, corpus, &mut input);
        }
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!(
                "fuzz {target}: seed {seed}, iteration {i}, input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
    eprintln!("fuzz {target}: {n} inputs, seed {seed}");
}

const MESSAGES: &[&[u8]] = &[
    br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    br#"{"jsonrpc":"2.0","id":"a-2","method":"tools/call","params":{"name":"progress","arguments":{"steps":3},"_meta":{"progressToken":"tok"}}}"#,
    br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1,"total":3}}"#,
    br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4,"reason":"user"}}"#,
    br#"{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"h\u00e9llo \"x\""}]}}"#,
    br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
    br#" [{"jsonrpc":"2.0","id":1,"method":"ping"}, {"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":9,"result":{}}] "#,
    br#"[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"i","method":"initialize","params":{}}]"#,
];

/// The byte range of `part` inside `whole`, if it is a slice of it.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (p >= w && p + part.len() <= w + whole.len()).then(|| p - w)
}

#[test]
fn json_rpc_bodies_keep_their_exact_bytes() {
    run("jsonrpc", MESSAGES, |input| {
        let raw = Bytes::copy_from_slice(input);
        if let Ok(m) = Message::parse(raw.clone()) {
            assert_eq!(&m.raw()[..], input);
        }
        match jsonrpc::parse_body(raw.clone()) {
            Ok(Body::Single(m)) => assert_eq!(&m.raw()[..], input),
            Ok(Body::Batch(items)) => {
                assert!(!items.is_empty());
                let mut last_end = 0;
                for m in &items {
                    let at = offset_in(&raw, m.raw()).expect("a batch item is a slice of the body");
                    assert!(at >= last_end, "batch items in order, not overlapping");
                    last_end = at + m.raw().len();
                    let again = Message::parse(m.raw().clone()).expect("an item parses alone");
                    assert_eq!((again.kind, &again.id), (m.kind, &m.id));
                }
            }
            Err(_) => {}
        }
        // The fronts' own rule on top: a batch with initialize never gets through.
        if let Ok(Body::Batch(items)) = body::parse_client_body(raw) {
            assert!(!items.iter().any(Message::is_initialize));
        }
    });
}

#[test]
fn legacy_session_ids_are_read_from_any_query() {
    let corpus: &[&[u8]] = &[
        b"sessionId=0123456789abcdef0123456789abcdef",
        b"session_id=abc&x=1",
        b"x=%zz&sessionId=%41%42&sessionId=second",
        b"a=b;c=d&&=&sessionId",
        b"",
    ];
    run("legacy-query", corpus, |input| {
        let query = String::from_utf8_lossy(input);
        if let Some(id) = legacy_sse::session_id(&query) {
            assert!(query.contains("session"), "{query:?} gave {id:?}");
        }
    });
}

/// Where a legacy client would POST if the bridge (reached as bridge.example) sent it
/// `endpoint`, resolved as a URL parser does.
fn resolve(endpoint: &str) -> Url {
    Url::parse("http://bridge.example/sse")
        .unwrap()
        .join(endpoint)
        .expect("an endpoint the bridge sends is a valid URL reference")
}

#[test]
fn accepted_forwarded_prefixes_stay_on_the_bridge() {
    let corpus: &[&[u8]] = &[
        b"/tools",
        b"/a/b/",
        b"/edge/v1.2",
        b"/",
        b"/\\evil",
        b"//x",
        b"/a/../b",
    ];
    run("forwarded-prefix", corpus, |input| {
        let value = String::from_utf8_lossy(input);
        if let Some(p) = forwarded::prefix(&value) {
            let url = resolve(&format!("{p}/messages?sessionId=s"));
            assert_eq!(url.host_str(), Some("bridge.example"), "{value:?}");
            assert_eq!(url.path(), format!("{p}/messages"), "{value:?}");
            assert_eq!(url.query(), Some("sessionId=s"), "{value:?}");
        }
    });
}

#[test]
fn accepted_forwarded_hosts_are_exactly_a_host() {
    let corpus: &[&[u8]] = &[
        b"mcp.example.com",
        b"mcp.example.com:8443",
        b"10.0.0.1:80",
        b"[::1]:8080",
        b"a@b",
        b"x/y",
    ];
    run("forwarded-host", corpus, |input| {
        let value = String::from_utf8_lossy(input);
        if let Some(h) = forwarded::host(&value) {
            let url = resolve(&format!("https://{h}/messages?sessionId=s"));
            assert_eq!(url.path(), "/messages", "{value:?} → {h:?}");
            assert_eq!(url.query(), Some("sessionId=s"), "{value:?} → {h:?}");
            assert!(url.username().is_empty() && url.password().is_none());
            assert_eq!(
                url.host().map(|h| h.to_owned()),
                parse_host(&h),
                "{value:?}"
            );
        }
    });
}

#[test]
fn host_check_admits_only_addresses_and_listed_names() {
    let corpus: &[&[u8]] = &[
        b"bridge.example:8080",
        b"localhost",
        b"127.0.0.1:1",
        b"[::1]:80",
        b"evil.example",
        b"BRIDGE.EXAMPLE.",
    ];
    let listen: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let list = HostAllowList::new(
        listen,
        &["bridge.example".into()],
        &["*.cert.example".into()],
    );
    run("host-check", corpus, |input| {
        let value = String::from_utf8_lossy(input);
        if list.admits(&value) {
            match parse_host(&value) {
                Some(Host::Domain(d)) => {
                    let d = d.trim_end_matches('.').to_ascii_lowercase();
                    assert!(
                        d == "bridge.example" || d == "localhost" || d.ends_with(".cert.example"),
                        "{value:?}"
                    );
                }
                Some(_) => {}
                None => panic!("admitted an unparsable host {value:?}"),
            }
        }
    });
}

const STREAMS: &[&[u8]] = &[
    b"event: endpoint\ndata: /messages?sessionId=abc\n\n",
    b"id: 1\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n",
    b": keepalive\n\nretry: 1500\nid: 7\ndata: \n\nid\ndata:x\rdata:y\r\r",
    b"data: a\ndata: b\n\ndata:c\r\n\r\nevent:e\n\n",
];

fn decode(chunks: &[&[u8]]) -> (Vec<Event>, Option<String>, Option<u64>) {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut out);
    }
    (out, d.last_event_id().map(str::to_owned), d.retry_ms())
}

#[test]
fn sse_decoding_does_not_depend_on_chunking() {
    let mut rng = Rng(seed());
    run("sse-chunking", STREAMS, |input| {
        let whole = decode(&[input]);
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode(&bytewise), whole);
        let mut chunks = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (c, r) = rest.split_at(rng.below(rest.len()) + 1);
            chunks.push(c);
            rest = r;
        }
        assert_eq!(decode(&chunks), whole);
    });
}

#[test]
fn sse_encoding_round_trips_through_the_decoder() {
    run("sse-round-trip", MESSAGES, |data| {
        if data.is_empty() {
            return; // an event with empty data is a priming event: not dispatched, by design
        }
        let (events, id, _) = decode(&[&sse::encode(Some("message"), Some("s-1"), data)]);
        assert_eq!(events.len(), 1, "{:?}", String::from_utf8_lossy(data));
        // Line ends inside data come back as LF: that is the SSE data model.
        let normalized = String::from_utf8_lossy(data)
            .replace("\r\n", "\n")
            .replace('\r', "\n");
        assert_eq!(String::from_utf8_lossy(&events[0].data), normalized);
        assert_eq!(id.as_deref(), Some("s-1"));
    });
}
