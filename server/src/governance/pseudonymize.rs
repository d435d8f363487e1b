//! Pseudonymization at publish: a keyed HMAC-SHA-256 of the value, so equal values still join
//! within a dataset while the clear value never reaches the warehouse. Each dataset gets its own
//! key, derived from the master key and the dataset name with HKDF-SHA-256, so pseudonyms of two
//! datasets cannot be joined with each other. The keys never leave the server.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::FerryError;

/// Holds the master key's HKDF state and, once derived for a dataset, the keyed HMAC state;
/// cloning it is cheaper than re-keying for every value.
#[derive(Clone)]
pub struct Pseudonymizer {
    master: Hkdf<Sha256>,
    keyed: Hmac<Sha256>,
}

/// Binds derived keys to their use, so the same master key could serve another purpose safely.
const HKDF_SALT: &[u8] = b"ferry pseudonymization v1";

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
            return Err(FerryError::Config(format!(
                "the pseudonymization key must be at least {MIN_KEY_BYTES} bytes"
            )));
        }
        let master = Hkdf::<Sha256>::new(Some(HKDF_SALT), key);
        let keyed = derive(&master, b"")?;
        Ok(Self { master, keyed })
    }

    /// The pseudonymizer of one dataset: its key is HKDF(master, info = the dataset's name).
    pub fn for_dataset(&self, dataset: &str) -> Result<Self, FerryError> {
        Ok(Self {
            master: self.master.clone(),
            keyed: derive(&self.master, dataset.as_bytes())?,
        })
    }

    /// 64 lowercase hex characters.
    pub fn pseudonym(&self, value: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        mac.update(value);
        hex::encode(mac.finalize().into_bytes())
    }
}

fn derive(master: &Hkdf<Sha256>, info: &[u8]) -> Result<Hmac<Sha256>, FerryError> {
    let mut key = [0u8; 32];
    master
        .expand(info, &mut key)
        .map_err(|_| FerryError::Internal("deriving a pseudonymization key".into()))?;
    Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| FerryError::Internal("unusable derived pseudonymization key".into()))
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
        // Per dataset: stable within one, unjoinable across two.
        let crm = a.for_dataset("crm.customers").unwrap();
        let shop = a.for_dataset("shop.orders").unwrap();
        assert_eq!(
            crm.pseudonym(b"ada@example.eu"),
            a.for_dataset("crm.customers")
                .unwrap()
                .pseudonym(b"ada@example.eu")
        );
        assert_ne!(
            crm.pseudonym(b"ada@example.eu"),
            shop.pseudonym(b"ada@example.eu")
        );
        assert_ne!(
            crm.pseudonym(b"ada@example.eu"),
            a.pseudonym(b"ada@example.eu")
        );
        assert!(!format!("{a:?}").contains("01"));
    }
}
