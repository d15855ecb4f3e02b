//! `subscriptions/listen`: the 2026-07-28 replacement of the GET stream and of
//! `resources/subscribe`, for the adapter that serves old clients from a modern server.
//!
//! Source: `schema/2026-07-28/schema.ts` (`SubscriptionsListenRequest` with
//! `params.notifications: SubscriptionFilter` — `toolsListChanged`, `promptsListChanged`,
//! `resourcesListChanged`, `resourceSubscriptions`, each opt-in; the stream opens with
//! `notifications/subscriptions/acknowledged` naming what the server agreed to honour; every
//! notification on it carries `_meta["io.modelcontextprotocol/subscriptionId"]` = the listen
//! request's id) and `basic/transports/streamable-http.mdx` ("Receiving Messages": progress
//! and log messages never ride the listen stream).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::meta::{self, Envelope};
use super::splice::{self, SpliceError};

/// The request that opens a listen stream.
pub const METHOD: &str = "subscriptions/listen";
/// The first message on a listen stream.
pub const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";

/// Which notifications to receive; everything is off unless asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionFilter {
    pub tools_list_changed: bool,
    pub prompts_list_changed: bool,
    pub resources_list_changed: bool,
    /// URIs to get `notifications/resources/updated` for (was `resources/subscribe`).
    pub resource_subscriptions: Vec<String>,
}

impl SubscriptionFilter {
    /// Every list-changed notification the server's capabilities (`ServerCapabilities`
    /// JSON text) say it sends — what a legacy client, which got them unasked, expects.
    pub fn from_capabilities(capabilities: &str) -> Self {
        #[derive(Deserialize, Default)]
        struct Caps {
            #[serde(default)]
            tools: Option<ListChanged>,
            #[serde(default)]
            prompts: Option<ListChanged>,
            #[serde(default)]
            resources: Option<ListChanged>,
        }
        #[derive(Deserialize, Default)]
        struct ListChanged {
            #[serde(rename = "listChanged", default)]
            list_changed: bool,
        }
        let caps: Caps = serde_json::from_str(capabilities).unwrap_or_default();
        let on = |c: Option<ListChanged>| c.is_some_and(|c| c.list_changed);
        SubscriptionFilter {
            tools_list_changed: on(caps.tools),
            prompts_list_changed: on(caps.prompts),
            resources_list_changed: on(caps.resources),
            resource_subscriptions: Vec::new(),
        }
    }

    /// The filter a `subscriptions/listen` request asks for (its `params.notifications`;
    /// absent members are off).
    pub fn from_request(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct R {
            params: Option<P>,
        }
        #[derive(Deserialize)]
        struct P {
            notifications: Option<F>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct F {
            #[serde(default)]
            tools_list_changed: bool,
            #[serde(default)]
            prompts_list_changed: bool,
            #[serde(default)]
            resources_list_changed: bool,
            #[serde(default)]
            resource_subscriptions: Vec<String>,
        }
        let f = serde_json::from_slice::<R>(body)?
            .params
            .and_then(|p| p.notifications)
            .unwrap_or_default();
        let mut filter = SubscriptionFilter {
            tools_list_changed: f.tools_list_changed,
            prompts_list_changed: f.prompts_list_changed,
            resources_list_changed: f.resources_list_changed,
            resource_subscriptions: Vec::new(),
        };
        for uri in &f.resource_subscriptions {
            filter.subscribe(uri);
        }
        Ok(filter)
    }

    /// What a server with these `ServerCapabilities` (JSON text) can honour of this filter:
    /// the list-changed kinds it declares, and the URIs only if it supports
    /// `resources/subscribe`.
    pub fn honoured_by(&self, capabilities: &str) -> Self {
        let offered = Self::from_capabilities(capabilities);
        let subscribe = serde_json::from_str::<serde_json::Value>(capabilities)
            .ok()
            .and_then(|c| c.pointer("/resources/subscribe").and_then(|v| v.as_bool()))
            .unwrap_or(false);
        SubscriptionFilter {
            tools_list_changed: self.tools_list_changed && offered.tools_list_changed,
            prompts_list_changed: self.prompts_list_changed && offered.prompts_list_changed,
            resources_list_changed: self.resources_list_changed && offered.resources_list_changed,
            resource_subscriptions: if subscribe {
                self.resource_subscriptions.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Whether a notification `method` (about resource `uri`, for `resources/updated`) is
    /// one this filter opted into.
    pub fn wants(&self, method: &str, uri: Option<&str>) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools_list_changed,
            "notifications/prompts/list_changed" => self.prompts_list_changed,
            "notifications/resources/list_changed" => self.resources_list_changed,
            "notifications/resources/updated" => {
                uri.is_some_and(|u| self.resource_subscriptions.iter().any(|s| s == u))
            }
            _ => false,
        }
    }

    /// Add a URI (a legacy `resources/subscribe`); `false` if it was already there.
    pub fn subscribe(&mut self, uri: &str) -> bool {
        if self.resource_subscriptions.iter().any(|u| u == uri) {
            return false;
        }
        self.resource_subscriptions.push(uri.to_owned());
        true
    }

    /// Drop a URI (a legacy `resources/unsubscribe`); `false` if it was not there.
    pub fn unsubscribe(&mut self, uri: &str) -> bool {
        let before = self.resource_subscriptions.len();
        self.resource_subscriptions.retain(|u| u != uri);
        before != self.resource_subscriptions.len()
    }

    /// The `SubscriptionFilter` object's JSON text, with only what is asked for.
    pub fn to_json(&self) -> String {
        let mut members = Vec::new();
        for (on, key) in [
            (self.tools_list_changed, "toolsListChanged"),
            (self.prompts_list_changed, "promptsListChanged"),
            (self.resources_list_changed, "resourcesListChanged"),
        ] {
            if on {
                members.push(format!("\"{key}\":true"));
            }
        }
        if !self.resource_subscriptions.is_empty() {
            let uris = serde_json::to_string(&self.resource_subscriptions).expect("strings");
            members.push(format!("\"resourceSubscriptions\":{uris}"));
        }
        format!("{{{}}}", members.join(","))
    }
}

/// A `subscriptions/listen` request with the envelope stamped.
pub fn listen_request(id_json: &str, env: &Envelope, filter: &SubscriptionFilter) -> String {
    let bare = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id_json},\"method\":\"{METHOD}\",\"params\":{{\"notifications\":{}}}}}",
        filter.to_json()
    );
    String::from_utf8(meta::stamp(bare.as_bytes(), env).expect("a well-formed request"))
        .expect("UTF-8 in, UTF-8 out")
}

/// The first message of a listen stream: what the server agreed to honour, tagged with the
/// listen request's id (`subscription_id_json`, JSON text).
pub fn acknowledgement(subscription_id_json: &str, honoured: &SubscriptionFilter) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"{ACKNOWLEDGED}\",\"params\":{{\"notifications\":{},\"_meta\":{{\"{}\":{subscription_id_json}}}}}}}",
        honoured.to_json(),
        meta::SUBSCRIPTION_ID,
    )
}

/// Tag a notification for a listen stream: `params._meta` gets the subscription id (JSON
/// text), by splice; every other byte stays.
pub fn tag(notification: &[u8], subscription_id_json: &str) -> Result<Vec<u8>, SpliceError> {
    let text =
        std::str::from_utf8(notification).map_err(|e| SpliceError::NotJson(e.to_string()))?;
    splice::validate(text)?;
    let (text, params) = splice::object_member(text, splice::root(text), "params")?;
    let (text, meta) = splice::object_member(&text, params, "_meta")?;
    Ok(splice::set(&text, meta, meta::SUBSCRIPTION_ID, subscription_id_json).into_bytes())
}

/// The `uri` of a `notifications/resources/updated`.
pub fn updated_uri(notification: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(notification)
        .ok()?
        .pointer("/params/uri")?
        .as_str()
        .map(str::to_owned)
}

/// A notification read off a listen stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenNotification {
    pub method: String,
    /// The listen request's id (JSON text) from `_meta`, when tagged.
    pub subscription_id: Option<String>,
    /// For the acknowledgement: the filter the server agreed to honour (JSON text).
    pub acknowledged: Option<String>,
}

/// Read the method, subscription id and (for the acknowledgement) honoured filter of a
/// notification body.
pub fn read_notification(body: &[u8]) -> Result<ListenNotification, serde_json::Error> {
    #[derive(Deserialize)]
    struct N<'a> {
        method: String,
        #[serde(borrow)]
        params: Option<P<'a>>,
    }
    #[derive(Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        notifications: Option<&'a RawValue>,
        #[serde(rename = "_meta", borrow)]
        meta: Option<M<'a>>,
    }
    #[derive(Deserialize)]
    struct M<'a> {
        #[serde(rename = "io.modelcontextprotocol/subscriptionId", borrow)]
        subscription_id: Option<&'a RawValue>,
    }
    let n: N<'_> = serde_json::from_slice(body)?;
    let (subscription_id, filter) = match n.params {
        Some(p) => (
            p.meta
                .and_then(|m| m.subscription_id)
                .map(|i| i.get().to_owned()),
            p.notifications.map(|f| f.get().to_owned()),
        ),
        None => (None, None),
    };
    Ok(ListenNotification {
        acknowledged: filter.filter(|_| n.method == ACKNOWLEDGED),
        method: n.method,
        subscription_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope {
            protocol_version: "2026-07-28".into(),
            client_capabilities: "{}".into(),
            client_info: None,
            log_level: None,
        }
    }

    #[test]
    fn filter_follows_the_servers_capabilities() {
        let f = SubscriptionFilter::from_capabilities(
            r#"{"tools":{"listChanged":true},"prompts":{},"resources":{"subscribe":true,"listChanged":true}}"#,
        );
        assert_eq!(
            f.to_json(),
            r#"{"toolsListChanged":true,"resourcesListChanged":true}"#
        );
        assert_eq!(SubscriptionFilter::from_capabilities("{}").to_json(), "{}");
    }

    #[test]
    fn a_listen_request_filter_is_honoured_as_far_as_the_server_can() {
        let asked = SubscriptionFilter::from_request(br#"{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"promptsListChanged":true,"resourceSubscriptions":["file:///a","file:///a"]},"_meta":{}}}"#).unwrap();
        assert_eq!(asked.resource_subscriptions, ["file:///a"]);
        let caps = r#"{"tools":{"listChanged":true},"resources":{"subscribe":true}}"#;
        assert_eq!(
            asked.honoured_by(caps).to_json(),
            r#"{"toolsListChanged":true,"resourceSubscriptions":["file:///a"]}"#
        );
        assert_eq!(asked.honoured_by(r#"{"tools":{}}"#).to_json(), "{}");
        let honoured = asked.honoured_by(caps);
        assert!(honoured.wants("notifications/tools/list_changed", None));
        assert!(!honoured.wants("notifications/prompts/list_changed", None));
        assert!(honoured.wants("notifications/resources/updated", Some("file:///a")));
        assert!(!honoured.wants("notifications/resources/updated", Some("file:///b")));
        assert!(!honoured.wants("notifications/message", None));
        assert_eq!(
            SubscriptionFilter::from_request(
                br#"{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen"}"#
            )
            .unwrap(),
            SubscriptionFilter::default()
        );
    }

    #[test]
    fn acknowledgement_and_tagged_notifications_carry_the_subscription_id() {
        let f = SubscriptionFilter {
            tools_list_changed: true,
            ..Default::default()
        };
        let ack = acknowledgement("\"l-1\"", &f);
        let read = read_notification(ack.as_bytes()).unwrap();
        assert_eq!(read.method, ACKNOWLEDGED);
        assert_eq!(read.subscription_id.as_deref(), Some("\"l-1\""));
        assert_eq!(
            read.acknowledged.as_deref(),
            Some(r#"{"toolsListChanged":true}"#)
        );
        assert_eq!(
            tag(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#, "7").unwrap(),
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":7}}}"#
        );
        assert_eq!(
            tag(br#"{"method":"notifications/resources/updated", "params":{"uri":"file:///a","_meta":{"k":1}},"jsonrpc":"2.0"}"#, "7").unwrap(),
            br#"{"method":"notifications/resources/updated", "params":{"uri":"file:///a","_meta":{"k":1,"io.modelcontextprotocol/subscriptionId":7}},"jsonrpc":"2.0"}"#
        );
        assert_eq!(
            updated_uri(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#).as_deref(),
            Some("file:///a")
        );
    }

    #[test]
    fn resource_subscriptions_replace_resources_subscribe() {
        let mut f = SubscriptionFilter::default();
        assert!(f.subscribe("file:///a"));
        assert!(!f.subscribe("file:///a"));
        assert!(f.subscribe("file:///b"));
        assert!(f.unsubscribe("file:///a"));
        assert!(!f.unsubscribe("file:///a"));
        assert_eq!(f.to_json(), r#"{"resourceSubscriptions":["file:///b"]}"#);
    }

    #[test]
    fn listen_request_carries_filter_and_envelope() {
        let f = SubscriptionFilter {
            tools_list_changed: true,
            ..Default::default()
        };
        assert_eq!(
            listen_request("\"listen-1\"", &env(), &f),
            r#"{"jsonrpc":"2.0","id":"listen-1","method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#
        );
    }

    #[test]
    fn reads_acknowledgement_and_tagged_notifications() {
        let ack = read_notification(br#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"notifications":{"toolsListChanged":true},"_meta":{"io.modelcontextprotocol/subscriptionId":"listen-1"}}}"#).unwrap();
        assert_eq!(ack.method, ACKNOWLEDGED);
        assert_eq!(ack.subscription_id.as_deref(), Some("\"listen-1\""));
        assert_eq!(
            ack.acknowledged.as_deref(),
            Some(r#"{"toolsListChanged":true}"#)
        );
        let changed = read_notification(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":7}}}"#).unwrap();
        assert_eq!(changed.subscription_id.as_deref(), Some("7"));
        assert_eq!(changed.acknowledged, None);
        let bare =
            read_notification(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#)
                .unwrap();
        assert_eq!(bare.subscription_id, None);
    }
}
