//! The session as its upstream adapter sees it: the [`UpstreamSink`] port.

use std::sync::Arc;

use super::failure::Phase;
use super::{EndReason, Session};
use crate::error::UpstreamError;
use crate::jsonrpc::{Id, Message};
use crate::observe::Difference;
use crate::transport::Transport;
use crate::upstream::{Backpressure, UpstreamSink, Via};

impl UpstreamSink for Session {
    fn connected(&self, transport: Transport, upstream_session: Option<&str>) {
        self.lock().upstream = Some(transport);
        self.span.record("upstream_transport", transport.as_str());
        if let Some(s) = upstream_session {
            self.span.record("upstream_session", s);
        }
    }

    fn deliver(self: Arc<Self>, msg: Message, via: Via) -> Backpressure {
        Box::pin(self.queue(msg, via))
    }

    fn difference(&self, kind: Difference, msg: Option<&Message>, reason: &str) {
        Session::difference(self, kind, msg, reason);
    }

    fn request_difference(&self, kind: Difference, id: Option<&Id>, reason: &str) {
        Session::request_difference(self, kind, id, reason);
    }

    fn request_failed(&self, id: &Id, err: UpstreamError) {
        let _ = self.fail(Some(id), err, Phase::Answering);
    }

    /// Every request still in flight gets an error, then the session ends.
    fn gone(&self, why: &str) {
        let ids = self.lock().inflight.ids();
        tracing::warn!(parent: &self.span, in_flight = ids.len(), "upstream gone: {why}");
        for id in ids {
            let _ = self.fail(
                Some(&id),
                UpstreamError::Connect(why.to_owned()),
                Phase::Answering,
            );
        }
        self.end(EndReason::UpstreamGone);
    }

    fn span(&self) -> tracing::Span {
        self.span.clone()
    }
}
