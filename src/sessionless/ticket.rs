//! The `requestState` the bridge mints when it ends a sessionless request with
//! `input_required`: it names the upstream session holding the call open (a ticket number)
//! and is sealed with a key only this process knows, bound to the client's credential, so a
//! client can neither forge one nor use another's. Opaque to the client, as the spec says.
//!
//! With replicas (`--redis`) the state also names the replica holding the call
//! (`replica~ticket.mac`) and is sealed with a key derived from the secret all replicas
//! share: a retry landing on another replica is relayed to the one that holds the call.

use ring::hmac;

pub struct Sealer {
    key: hmac::Key,
    /// This replica's id, when states name replicas.
    replica: Option<String>,
}

impl Default for Sealer {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS random source is available");
        Sealer {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            replica: None,
        }
    }
}

impl Sealer {
    /// States that name `replica`, sealed with a key every replica derives from `secret`.
    pub fn shared(secret: &[u8], replica: &str) -> Sealer {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let key = hmac::sign(&derive, b"mcp-bridge requestState key v1");
        Sealer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            replica: Some(replica.to_owned()),
        }
    }

    /// `ticket.mac` (both hex), prefixed with `replica~` when states name replicas.
    pub fn seal(&self, ticket: u64, credential: Option<&[u8; 32]>) -> String {
        let replica = self.replica.as_deref().unwrap_or("");
        let tag = hmac::sign(&self.key, &message(replica, ticket, credential));
        let mac = crate::hex::encode(tag.as_ref());
        match &self.replica {
            Some(r) => format!("{r}~{ticket:x}.{mac}"),
            None => format!("{ticket:x}.{mac}"),
        }
    }

    /// The ticket a state names, if this process sealed it for this credential.
    pub fn open(&self, state: &str, credential: Option<&[u8; 32]>) -> Option<u64> {
        let (replica, rest) = match &self.replica {
            Some(me) => {
                let (named, rest) = state.split_once('~')?;
                (named == me).then_some((me.as_str(), rest))?
            }
            None => ("", state),
        };
        let (ticket, mac) = rest.split_once('.')?;
        let ticket = u64::from_str_radix(ticket, 16).ok()?;
        let mac = crate::hex::decode(mac)?;
        hmac::verify(&self.key, &message(replica, ticket, credential), &mac).ok()?;
        Some(ticket)
    }

    /// The other replica a state names, if it names one (its seal is checked there).
    pub fn held_by<'a>(&self, state: &'a str) -> Option<&'a str> {
        let me = self.replica.as_deref()?;
        let (named, _) = state.split_once('~')?;
        (named != me && !named.is_empty()).then_some(named)
    }
}

fn message(replica: &str, ticket: u64, credential: Option<&[u8; 32]>) -> Vec<u8> {
    let mut m = replica.as_bytes().to_vec();
    m.push(b'~');
    m.extend_from_slice(&ticket.to_be_bytes());
    m.extend_from_slice(credential.map_or(&[0u8; 32][..], |c| &c[..]));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_opens_only_for_its_credential_and_only_unchanged() {
        let s = Sealer::default();
        let alice = [1u8; 32];
        let state = s.seal(42, Some(&alice));
        assert_eq!(s.open(&state, Some(&alice)), Some(42));
        assert_eq!(s.open(&state, Some(&[2u8; 32])), None);
        assert_eq!(s.open(&state, None), None);
        let forged = state.replacen("2a.", "2b.", 1);
        assert_eq!(s.open(&forged, Some(&alice)), None);
        assert_eq!(
            Sealer::default().open(&state, Some(&alice)),
            None,
            "another process"
        );
    }

    #[test]
    fn with_replicas_a_state_names_its_replica_and_opens_only_there() {
        let (a, b) = (
            Sealer::shared(b"secret", "ra"),
            Sealer::shared(b"secret", "rb"),
        );
        let alice = [1u8; 32];
        let state = a.seal(7, Some(&alice));
        assert!(state.starts_with("ra~7."), "{state}");
        assert_eq!(a.open(&state, Some(&alice)), Some(7));
        assert_eq!(b.open(&state, Some(&alice)), None, "held by ra");
        assert_eq!(b.held_by(&state), Some("ra"));
        assert_eq!(a.held_by(&state), None);
        let renamed = state.replacen("ra~", "rb~", 1);
        assert_eq!(
            b.open(&renamed, Some(&alice)),
            None,
            "the replica is sealed too"
        );
        let other = Sealer::shared(b"another secret", "ra");
        assert_eq!(other.open(&state, Some(&alice)), None);
    }
}
