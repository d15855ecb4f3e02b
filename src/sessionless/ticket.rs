//! The `requestState` the bridge mints when it ends a sessionless request with
//! `input_required`: it names the upstream session holding the call open (a ticket number)
//! and is sealed with a key only this process knows, bound to the client's credential, so a
//! client can neither forge one nor use another's. Opaque to the client, as the spec says.

use ring::hmac;

pub struct Sealer {
    key: hmac::Key,
}

impl Default for Sealer {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS random source is available");
        Sealer {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        }
    }
}

impl Sealer {
    /// `ticket.mac`, both hex.
    pub fn seal(&self, ticket: u64, credential: Option<&[u8; 32]>) -> String {
        let tag = hmac::sign(&self.key, &message(ticket, credential));
        format!("{ticket:x}.{}", hex(tag.as_ref()))
    }

    /// The ticket a state names, if this process sealed it for this credential.
    pub fn open(&self, state: &str, credential: Option<&[u8; 32]>) -> Option<u64> {
        let (ticket, mac) = state.split_once('.')?;
        let ticket = u64::from_str_radix(ticket, 16).ok()?;
        let mac = unhex(mac)?;
        hmac::verify(&self.key, &message(ticket, credential), &mac).ok()?;
        Some(ticket)
    }
}

fn message(ticket: u64, credential: Option<&[u8; 32]>) -> Vec<u8> {
    let mut m = ticket.to_be_bytes().to_vec();
    m.extend_from_slice(credential.map_or(&[0u8; 32][..], |c| &c[..]));
    m
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
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
}
