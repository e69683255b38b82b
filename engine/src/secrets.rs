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

/// Encrypts secrets the engine must be able to read back (webhook signing
/// secrets) with ChaCha20-Poly1305 under the node's master key.
pub struct Sealer {
    cipher: chacha20poly1305::ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

const NONCE_LEN: usize = 12;

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        use chacha20poly1305::KeyInit;
        Sealer { cipher: chacha20poly1305::ChaCha20Poly1305::new(key.into()) }
    }

    /// The master key from `encoded` (base64 of 32 bytes), or else from the
    /// key file, created with a random key on first use.
    pub fn load(encoded: Option<&str>, key_file: &std::path::Path) -> Result<Self, String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let text = match encoded {
            Some(k) => k.to_string(),
            None if key_file.exists() => {
                std::fs::read_to_string(key_file).map_err(|e| format!("{}: {e}", key_file.display()))?
            }
            None => {
                let key: [u8; 32] = rand::random();
                let text = b64.encode(key);
                write_private(key_file, &text).map_err(|e| format!("{}: {e}", key_file.display()))?;
                text
            }
        };
        let bytes = b64.decode(text.trim()).map_err(|_| "the secret key is not base64".to_string())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "the secret key must be 32 bytes".to_string())?;
        Ok(Sealer::new(&key))
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        use chacha20poly1305::aead::Aead;
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut out = nonce.to_vec();
        out.extend(self.cipher.encrypt(&nonce.into(), plaintext).expect("encryption cannot fail"));
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        use chacha20poly1305::aead::Aead;
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.cipher.decrypt(&nonce.into(), ciphertext).ok()
    }
}

/// Writes a file only its owner can read.
pub fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")
}

/// A new webhook signing secret (`whsec_...`).
pub fn generate_webhook_secret() -> String {
    let mut rng = rand::rng();
    let random: String = (0..32).map(|_| KEY_ALPHABET[rng.random_range(0..KEY_ALPHABET.len())] as char).collect();
    format!("whsec_{random}")
}

/// The `X-Switchboard-Signature` header for `body` sent at `timestamp`
/// (Unix seconds): `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let a = Sealer::new(&[1; 32]);
        let b = Sealer::new(&[2; 32]);
        let sealed = a.seal(b"whsec_abc");
        assert_ne!(&sealed[NONCE_LEN..], b"whsec_abc");
        assert_eq!(a.open(&sealed).unwrap(), b"whsec_abc");
        assert!(b.open(&sealed).is_none());
    }

    #[test]
    fn webhook_signature_is_hmac_of_timestamp_dot_body() {
        // Reference value from Python: hmac.new(b"whsec_test",
        // b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            webhook_signature("whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

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
