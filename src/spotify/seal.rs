//! Spotify tokens sealed at rest: ChaCha20-Poly1305 with `spotify.token_key` (32 bytes,
//! base64). A sealed value is `enc1:` and base64 of nonce ‖ ciphertext; without a key, values
//! are stored as Spotify issued them (a warning at startup says so). Plain values from before a
//! key was set still read, and are sealed at their next write.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng},
    ChaCha20Poly1305, Key, Nonce,
};

const PREFIX: &str = "enc1:";
const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct Seal {
    cipher: Option<ChaCha20Poly1305>,
}

impl Seal {
    /// `key`: base64 of 32 random bytes (`openssl rand -base64 32`), or none.
    pub fn new(key: Option<&str>) -> anyhow::Result<Self> {
        let cipher = match key.map(str::trim).filter(|k| !k.is_empty()) {
            None => None,
            Some(key) => {
                let bytes = STANDARD
                    .decode(key)
                    .map_err(|_| anyhow::anyhow!("spotify.token_key is not base64"))?;
                anyhow::ensure!(
                    bytes.len() == 32,
                    "spotify.token_key must be 32 bytes (base64 of `openssl rand -base64 32`), not {}",
                    bytes.len()
                );
                Some(ChaCha20Poly1305::new(Key::from_slice(&bytes)))
            }
        };
        Ok(Self { cipher })
    }

    pub fn is_sealing(&self) -> bool {
        self.cipher.is_some()
    }

    pub fn seal(&self, plain: &str) -> String {
        let Some(cipher) = &self.cipher else {
            return plain.to_string();
        };
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, plain.as_bytes())
            .expect("ChaCha20-Poly1305 encryption of a short token cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// The token, or why it cannot be read (a sealed value without the right key).
    pub fn open(&self, stored: &str) -> Result<String, String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let cipher = self
            .cipher
            .as_ref()
            .ok_or("the stored Spotify tokens are sealed but spotify.token_key is not set")?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| "a sealed Spotify token is not base64")?;
        if bytes.len() <= NONCE_LEN {
            return Err("a sealed Spotify token is too short".into());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| {
                "a sealed Spotify token does not open with spotify.token_key (was the key changed?)"
            })?;
        String::from_utf8(plain).map_err(|_| "a sealed Spotify token is not text".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn sealed_tokens_open_with_the_key_only() {
        let seal = Seal::new(Some(KEY)).unwrap();
        let sealed = seal.seal("BQD-access-token");
        assert!(sealed.starts_with("enc1:") && !sealed.contains("access"));
        assert_ne!(
            sealed,
            seal.seal("BQD-access-token"),
            "a fresh nonce each time"
        );
        assert_eq!(seal.open(&sealed).unwrap(), "BQD-access-token");
        // Plain values from before the key still read.
        assert_eq!(seal.open("plain").unwrap(), "plain");
        let other = Seal::new(Some("HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=")).unwrap();
        assert!(other
            .open(&sealed)
            .unwrap_err()
            .contains("was the key changed"));
        assert!(Seal::new(None)
            .unwrap()
            .open(&sealed)
            .unwrap_err()
            .contains("not set"));
        let mut tampered = sealed.clone();
        tampered.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
        assert!(seal.open(&tampered).is_err());
        assert!(
            Seal::new(Some("c2hvcnQ=")).is_err(),
            "a key of the wrong length is refused"
        );
        assert_eq!(Seal::new(None).unwrap().seal("t"), "t");
    }
}
