//! Lower-case hex, for ids, digests and MACs the bridge puts in headers, keys and tokens.

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// The bytes of a hex text (either case); `None` for anything else.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `n` bytes from the OS CSPRNG, as hex.
pub fn random(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    encode(&buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_what_is_not_hex() {
        let b = [0x00, 0x0f, 0xa5, 0xff];
        assert_eq!(super::encode(&b), "000fa5ff");
        assert_eq!(super::decode("000fA5ff").unwrap(), b);
        for bad in ["0", "0g", "+1", "é1"] {
            assert_eq!(super::decode(bad), None, "{bad}");
        }
        assert_eq!(super::random(16).len(), 32);
    }
}
