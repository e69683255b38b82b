//! API keys: generated with the OS RNG, shown once, stored as a SHA-256
//! digest (keys carry 190 bits of entropy, so a fast hash is the right
//! tool), compared in constant time.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const KEY_RANDOM_CHARS: usize = 32;

/// Whether a key sends for real or only to the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Live,
    Test,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Live => "live",
            KeyMode::Test => "test",
        }
    }
}

/// A freshly generated key: the secret (shown once) and what is stored.
pub struct NewApiKey {
    pub secret: String,
    pub hash: Vec<u8>,
    /// The first characters, kept to help people tell keys apart.
    pub prefix: String,
}

pub fn generate_api_key(mode: KeyMode) -> NewApiKey {
    let mut rng = rand::rng();
    let random: String =
        (0..KEY_RANDOM_CHARS).map(|_| KEY_ALPHABET[rng.random_range(0..KEY_ALPHABET.len())] as char).collect();
    let secret = format!("sk_{}_{random}", mode.as_str());
    let prefix = secret[..secret.len() - KEY_RANDOM_CHARS + 4].to_string();
    NewApiKey { hash: hash_key(&secret), prefix, secret }
}

pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Wraps a secret so that `Debug` and `Display` never print it.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_stably() {
        let a = generate_api_key(KeyMode::Live);
        let b = generate_api_key(KeyMode::Live);
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("sk_live_"));
        assert_eq!(hash_key(&a.secret), a.hash);
        assert!(constant_time_eq(&a.hash, &hash_key(&a.secret)));
        assert!(!constant_time_eq(&a.hash, &b.hash));
        assert!(!a.prefix.contains(&a.secret[a.prefix.len()..]));
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
