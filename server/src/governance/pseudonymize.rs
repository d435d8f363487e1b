//! Pseudonymization at publish: a keyed HMAC-SHA-256 of the value, so equal values still join
//! while the clear value never reaches the warehouse. The key never leaves the server.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::FerryError;

/// Holds the keyed HMAC state; cloning it is cheaper than re-keying for every value.
#[derive(Clone)]
pub struct Pseudonymizer {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<key redacted>)")
    }
}

/// Shorter keys make the pseudonyms guessable by brute force over the key.
const MIN_KEY_BYTES: usize = 32;

impl Pseudonymizer {
    pub fn new(key: &[u8]) -> Result<Self, FerryError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(FerryError::InvalidArgument(format!(
                "the pseudonymization key must be at least {MIN_KEY_BYTES} bytes"
            )));
        }
        let keyed = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| FerryError::InvalidArgument("unusable pseudonymization key".into()))?;
        Ok(Self { keyed })
    }

    /// 64 lowercase hex characters.
    pub fn pseudonym(&self, value: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        mac.update(value);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_per_key_and_differ_across_keys() {
        let a = Pseudonymizer::new(&[1u8; 32]).unwrap();
        let b = Pseudonymizer::new(&[2u8; 32]).unwrap();
        assert_eq!(
            a.pseudonym(b"ada@example.eu"),
            a.pseudonym(b"ada@example.eu")
        );
        assert_ne!(
            a.pseudonym(b"ada@example.eu"),
            a.pseudonym(b"bob@example.eu")
        );
        assert_ne!(
            a.pseudonym(b"ada@example.eu"),
            b.pseudonym(b"ada@example.eu")
        );
        assert_eq!(a.pseudonym(b"x").len(), 64);
        assert!(Pseudonymizer::new(b"short").is_err());
        assert!(!format!("{a:?}").contains("01"));
    }
}
