use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::TryRng;
use sha2::{Digest, Sha256};

/// A bearer token as handed to a client: `chorus_` + 32 random bytes in base64url. It is shown
/// once and stored only as its SHA-256 ([`TokenHash`]); 256 bits of entropy make a slow hash
/// unnecessary. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

const PREFIX: &str = "chorus_";
const RANDOM_BYTES: usize = 32;

impl AccessToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; RANDOM_BYTES];
        // Straight from the operating system: a token is a credential.
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random source failed");
        Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Checks the shape only; whether the token is known is the store's question.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let body = raw
            .strip_prefix(PREFIX)
            .ok_or("the token does not start with chorus_")?;
        match URL_SAFE_NO_PAD.decode(body) {
            Ok(bytes) if bytes.len() == RANDOM_BYTES => Ok(Self(raw.to_string())),
            _ => Err("the token is not a Chorus token"),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// Lowercase hex SHA-256 of a secret: what the store keeps and what rate-limit keys use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_are_unique() {
        let a = AccessToken::generate();
        let b = AccessToken::generate();
        assert_ne!(a, b);
        assert!(AccessToken::parse(a.expose()).is_ok());
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        assert!(AccessToken::parse("").is_err());
        assert!(AccessToken::parse("chorus_short").is_err());
        assert!(AccessToken::parse("Bearer abc").is_err());
    }

    #[test]
    fn debug_hides_the_token_and_hash_is_stable_hex() {
        let t = AccessToken::generate();
        assert!(!format!("{t:?}").contains(t.expose()));
        assert_eq!(t.hash(), t.hash());
        assert_eq!(t.hash().as_str().len(), 64);
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
