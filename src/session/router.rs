//! The router: which client stream gets each upstream message. A pure function of the
//! client's transport, the requests in flight, which streams are open, the message and where
//! the upstream delivered it — so each rule is tested on its own, below.
//!
//! The rules, in order (README, "Routing one legacy stream onto many Streamable streams"):
//! 1. a response goes to the stream of the request with the same id;
//! 2. `notifications/progress` goes to the stream of the request owning its token;
//! 3. a message the upstream sent on a request's stream stays with that request;
//! 4. a message the upstream marked unrelated goes to the standalone stream when it is open;
//! 5. with exactly one request in flight, other messages go to its stream (a guess);
//! 6. otherwise to the standalone stream, read now (a guess) or later (buffered).
//!
//! A client whose transport has one shared stream gets everything on it.

use super::inflight::InFlight;
use super::stream::{StreamNo, MAIN_STREAM};
use crate::jsonrpc::{Kind, Message};
use crate::observe::Difference;
use crate::transport::Transport;
use crate::upstream::Via;

/// What the router knows about the client's streams.
pub trait Streams {
    /// The stream exists and will still carry messages.
    fn live(&self, no: StreamNo) -> bool;
    /// A client is reading the standalone stream now.
    fn main_has_reader(&self) -> bool;
}

/// A difference the router records with its decision (a guess, or why it dropped).
pub type Note = (Difference, String);

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A response to the request in flight with this id: it goes to `stream`, and the
    /// request is answered.
    Answer { stream: StreamNo },
    /// Send on `stream`; `note` when the stream was guessed.
    Send {
        stream: StreamNo,
        note: Option<Note>,
    },
    /// No stream can take it.
    Drop(Note),
}

pub fn route(
    client: Transport,
    inflight: &InFlight,
    streams: &impl Streams,
    msg: &Message,
    via: &Via,
) -> Route {
    let shared = client.one_shared_stream();
    if msg.kind == Kind::Response {
        let pending = msg.id.as_ref().and_then(|id| inflight.get(id));
        return match (pending, shared) {
            (Some(p), false) => Route::Answer { stream: p.stream },
            (Some(_), true) => Route::Answer {
                stream: MAIN_STREAM,
            },
            // The client sees everything, as it would directly.
            (None, true) => Route::Send {
                stream: MAIN_STREAM,
                note: None,
            },
            (None, false) if msg.id.is_none() => Route::Drop((
                Difference::MessageDropped,
                "error response without an id: no request to route it to".into(),
            )),
            (None, false) => Route::Drop((
                Difference::MessageDropped,
                "response to a request that is not in flight (cancelled or answered)".into(),
            )),
        };
    }
    if shared {
        return Route::Send {
            stream: MAIN_STREAM,
            note: None,
        };
    }
    let send = |stream| Route::Send { stream, note: None };
    if let Some(no) = msg
        .progress_token
        .as_ref()
        .and_then(|t| inflight.stream_of_token(t))
        .filter(|&no| streams.live(no))
    {
        return send(no);
    }
    if let Via::RequestStream(rid) = via {
        if let Some(p) = inflight.get(rid).filter(|p| streams.live(p.stream)) {
            return send(p.stream);
        }
    }
    let main_open = streams.main_has_reader();
    if matches!(via, Via::StandaloneStream) && main_open {
        return send(MAIN_STREAM);
    }
    // No relation metadata (a legacy upstream gives none): with exactly one request in
    // flight the message almost surely belongs to it (logs, sampling while a tool runs), and
    // its stream keeps it in order with that request's progress and result.
    if let Some(p) = inflight.only().filter(|p| streams.live(p.stream)) {
        return Route::Send {
            stream: p.stream,
            note: Some((
                Difference::NotificationRerouted,
                format!(
                    "no relation metadata; sent on the stream of the only request in flight (stream {})",
                    p.stream
                ),
            )),
        };
    }
    let note = if main_open {
        (
            Difference::NotificationRerouted,
            format!(
                "no relation metadata; {} requests in flight; sent on the standalone stream",
                inflight.len()
            ),
        )
    } else {
        (
            Difference::MessageBuffered,
            "no stream to carry it; kept for the standalone stream (GET)".into(),
        )
    };
    Route::Send {
        stream: MAIN_STREAM,
        note: Some(note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Id;
    use std::collections::HashSet;

    struct View {
        live: HashSet<StreamNo>,
        reader: bool,
    }

    impl Streams for View {
        fn live(&self, no: StreamNo) -> bool {
            self.live.contains(&no)
        }
        fn main_has_reader(&self) -> bool {
            self.reader
        }
    }

    fn msg(json: &str) -> Message {
        Message::parse(json.to_owned().into()).unwrap()
    }

    fn id(json: &str) -> Id {
        msg(&format!(r#"{{"jsonrpc":"2.0","id":{json},"result":{{}}}}"#))
            .id
            .unwrap()
    }

    /// Requests 1 (stream 1, token "a") and 2 (stream 2, token "b") in flight.
    fn two_in_flight() -> InFlight {
        let mut t = InFlight::default();
        t.register(&id("1"), "tools/call", Some(&id(r#""a""#)), 1);
        t.register(&id("2"), "tools/call", Some(&id(r#""b""#)), 2);
        t
    }

    fn one_in_flight() -> InFlight {
        let mut t = InFlight::default();
        t.register(&id("1"), "tools/call", None, 1);
        t
    }

    fn view(live: &[StreamNo], reader: bool) -> View {
        View {
            live: live.iter().copied().collect(),
            reader,
        }
    }

    const LOG: &str = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#;

    fn sent(stream: StreamNo) -> Route {
        Route::Send { stream, note: None }
    }

    fn kind(r: &Route) -> Option<Difference> {
        match r {
            Route::Send { note, .. } => note.as_ref().map(|n| n.0),
            Route::Drop(n) => Some(n.0),
            Route::Answer { .. } => None,
        }
    }

    #[test]
    fn rule_1_a_response_goes_to_its_requests_stream() {
        let t = two_in_flight();
        let v = view(&[0, 1, 2], true);
        let r = msg(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#);
        assert_eq!(
            route(Transport::Streamable, &t, &v, &r, &Via::SharedStream),
            Route::Answer { stream: 2 }
        );
        // Ids compare as JSON: "2" is another request.
        let s = msg(r#"{"jsonrpc":"2.0","id":"2","result":{}}"#);
        let routed = route(Transport::Streamable, &t, &v, &s, &Via::SharedStream);
        assert_eq!(kind(&routed), Some(Difference::MessageDropped));
    }

    #[test]
    fn rule_1_a_response_without_a_request_in_flight_is_dropped_and_recorded() {
        let t = InFlight::default();
        let v = view(&[0], true);
        for body in [
            r#"{"jsonrpc":"2.0","id":9,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"x"}}"#,
        ] {
            let r = route(
                Transport::Streamable,
                &t,
                &v,
                &msg(body),
                &Via::SharedStream,
            );
            assert_eq!(kind(&r), Some(Difference::MessageDropped), "{body}");
        }
    }

    #[test]
    fn rule_2_progress_follows_its_token() {
        let t = two_in_flight();
        let v = view(&[0, 1, 2], true);
        let p = msg(
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"b","progress":1}}"#,
        );
        // Even when the upstream says it is unrelated, the token decides.
        assert_eq!(
            route(Transport::Streamable, &t, &v, &p, &Via::StandaloneStream),
            sent(2)
        );
    }

    #[test]
    fn rule_3_a_message_on_a_requests_upstream_stream_stays_with_it() {
        let t = two_in_flight();
        let v = view(&[0, 1, 2], true);
        let via = Via::RequestStream(id("1"));
        assert_eq!(
            route(Transport::Streamable, &t, &v, &msg(LOG), &via),
            sent(1)
        );
    }

    #[test]
    fn rule_4_unrelated_messages_go_to_the_open_standalone_stream() {
        let t = one_in_flight();
        let v = view(&[0, 1], true);
        assert_eq!(
            route(
                Transport::Streamable,
                &t,
                &v,
                &msg(LOG),
                &Via::StandaloneStream
            ),
            sent(MAIN_STREAM)
        );
    }

    #[test]
    fn rule_5_without_relation_the_only_request_in_flight_gets_it() {
        let t = one_in_flight();
        let v = view(&[0, 1], true);
        let r = route(Transport::Streamable, &t, &v, &msg(LOG), &Via::SharedStream);
        assert!(matches!(r, Route::Send { stream: 1, .. }));
        assert_eq!(kind(&r), Some(Difference::NotificationRerouted));
        // Not when that request's stream has finished.
        let v = view(&[0], true);
        let r = route(Transport::Streamable, &t, &v, &msg(LOG), &Via::SharedStream);
        assert!(matches!(r, Route::Send { stream: 0, .. }));
    }

    #[test]
    fn rule_6_otherwise_the_standalone_stream_now_or_later() {
        let t = two_in_flight();
        let open = route(
            Transport::Streamable,
            &t,
            &view(&[0, 1, 2], true),
            &msg(LOG),
            &Via::SharedStream,
        );
        assert!(matches!(open, Route::Send { stream: 0, .. }));
        assert_eq!(kind(&open), Some(Difference::NotificationRerouted));
        let closed = route(
            Transport::Streamable,
            &t,
            &view(&[0, 1, 2], false),
            &msg(LOG),
            &Via::SharedStream,
        );
        assert!(matches!(closed, Route::Send { stream: 0, .. }));
        assert_eq!(kind(&closed), Some(Difference::MessageBuffered));
    }

    #[test]
    fn one_shared_stream_gets_everything_in_order() {
        let t = one_in_flight();
        let v = view(&[0], true);
        let legacy = Transport::LegacySse;
        assert_eq!(
            route(legacy, &t, &v, &msg(LOG), &Via::SharedStream),
            sent(0)
        );
        let answer = msg(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        assert_eq!(
            route(legacy, &t, &v, &answer, &Via::SharedStream),
            Route::Answer { stream: 0 }
        );
        let stray = msg(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"x"}}"#);
        assert_eq!(route(legacy, &t, &v, &stray, &Via::SharedStream), sent(0));
    }
}
