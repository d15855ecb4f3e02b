//! Key naming. Every key starts with one configurable prefix (`--redis-key-prefix`), so
//! several bridges can share a Redis and an operator can find (and drop) all of one:
//!
//! | key | type | TTL |
//! |---|---|---|
//! | `{prefix}replica:{id}` | string: the replica's address | replica TTL, heartbeat |
//! | `{prefix}replicas` | sorted set: id → expiry (Redis ms) | longest replica TTL |
//! | `{prefix}session:{id}` | hash: the [`super::SessionRecord`] | session TTL, owner's refresh |

/// The prefix under which this bridge's keys live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// The default prefix.
pub const DEFAULT_PREFIX: &str = "mcp-bridge:";

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A replica's registration (its address).
    pub fn replica(&self, id: &str) -> String {
        format!("{}replica:{id}", self.prefix)
    }

    /// The prefix of [`Keys::replica`], for scripts that form it from an id.
    pub(crate) fn replica_prefix(&self) -> String {
        self.replica("")
    }

    /// The index of registered replicas, scored by when each expires.
    pub fn replicas(&self) -> String {
        format!("{}replicas", self.prefix)
    }

    /// A session's record.
    pub fn session(&self, id: &str) -> String {
        format!("{}session:{id}", self.prefix)
    }

    /// A session's mirrored replay log (a Redis stream; `--redis-replay`).
    pub fn events(&self, id: &str) -> String {
        format!("{}events:{id}", self.prefix)
    }
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let k = Keys::new("app1:");
        assert_eq!(k.replica("r1"), "app1:replica:r1");
        assert_eq!(k.replica_prefix(), "app1:replica:");
        assert_eq!(k.replicas(), "app1:replicas");
        assert_eq!(k.session("s1"), "app1:session:s1");
        assert_eq!(Keys::default().session("s"), "mcp-bridge:session:s");
    }
}
