//! The client's requests still waiting for their response, and the progress tokens that
//! route notifications to their streams. Keyed by JSON-RPC id (see [`Id`] for how ids compare).

use std::collections::HashMap;
use std::time::Instant;

use super::StreamNo;
use crate::jsonrpc::Id;

/// One request in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The id exactly as the client wrote it: its response goes back with this text.
    pub id: Id,
    pub stream: StreamNo,
    pub method: Box<str>,
    pub token: Option<Id>,
    pub since: Instant,
}

#[derive(Default)]
pub struct InFlight {
    requests: HashMap<Id, Pending>,
    tokens: HashMap<Id, StreamNo>,
}

impl InFlight {
    /// A request the client sent on `stream` (a later request with the same id replaces it).
    pub fn register(&mut self, id: &Id, method: &str, token: Option<&Id>, stream: StreamNo) {
        if let Some(token) = token {
            self.tokens.insert(token.clone(), stream);
        }
        self.requests.insert(
            id.clone(),
            Pending {
                id: id.clone(),
                stream,
                method: method.into(),
                token: token.cloned(),
                since: Instant::now(),
            },
        );
    }

    /// Remove request `id` (answered, cancelled or failed); its progress token stops routing.
    pub fn take(&mut self, id: &Id) -> Option<Pending> {
        let p = self.requests.remove(id)?;
        if let Some(token) = &p.token {
            if self.tokens.get(token) == Some(&p.stream) {
                self.tokens.remove(token);
            }
        }
        Some(p)
    }

    pub fn get(&self, id: &Id) -> Option<&Pending> {
        self.requests.get(id)
    }

    /// The stream of the request that owns progress token `token`.
    pub fn stream_of_token(&self, token: &Id) -> Option<StreamNo> {
        self.tokens.get(token).copied()
    }

    /// The request in flight when it is the only one.
    pub fn only(&self) -> Option<&Pending> {
        match self.requests.len() {
            1 => self.requests.values().next(),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn ids(&self) -> Vec<Id> {
        self.requests.values().map(|p| p.id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Message;

    fn id(json: &str) -> Id {
        let raw = format!(r#"{{"jsonrpc":"2.0","id":{json},"result":{{}}}}"#);
        Message::parse(raw.into()).unwrap().id.unwrap()
    }

    #[test]
    fn taking_a_request_stops_its_token_routing() {
        let mut t = InFlight::default();
        t.register(&id("1"), "tools/call", Some(&id("\"tok\"")), 3);
        assert_eq!(t.stream_of_token(&id("\"tok\"")), Some(3));
        assert_eq!(t.only().map(|p| p.stream), Some(3));
        let p = t.take(&id("1")).unwrap();
        assert_eq!(&*p.method, "tools/call");
        assert_eq!(t.stream_of_token(&id("\"tok\"")), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_token_reused_by_a_later_request_keeps_routing_to_it() {
        let mut t = InFlight::default();
        t.register(&id("1"), "a", Some(&id("7")), 1);
        t.register(&id("2"), "b", Some(&id("7")), 2);
        t.take(&id("1"));
        assert_eq!(t.stream_of_token(&id("7")), Some(2));
        assert!(t.only().is_some());
    }
}
