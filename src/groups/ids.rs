//! Identifiers a group session hands out.

use std::fmt;

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// A group id: `g_` and a UUIDv7 in simple form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(String);

impl GroupId {
    pub fn generate() -> Self {
        Self(format!("g_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.strip_prefix("g_").is_some_and(|hex| {
            hex.len() == 32
                && hex
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        });
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err("group ids are \"g_\" and 32 lowercase hex digits".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Letters and digits that cannot be mistaken for one another when read aloud or off a screen.
const JOIN_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const JOIN_CODE_LEN: usize = 6;

/// Six characters (31^6 ≈ 887 million codes); the store's unique index catches the rare clash.
pub fn generate_join_code() -> String {
    let mut rng = rand::rng();
    (0..JOIN_CODE_LEN)
        .map(|_| JOIN_CODE_ALPHABET[rng.random_range(0..JOIN_CODE_ALPHABET.len())] as char)
        .collect()
}

/// A typed code upper-cased with spaces and dashes removed, if it can be a join code at all.
pub fn normalize_join_code(raw: &str) -> Option<String> {
    let code: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == JOIN_CODE_LEN && code.bytes().all(|b| JOIN_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// An entry id (`e_` and 16 hex digits): the same track added twice gets two entries.
pub fn generate_entry_id() -> String {
    format!("e_{:016x}", rand::rng().random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_shapes() {
        let id = GroupId::generate();
        assert_eq!(GroupId::parse(id.as_str()).unwrap(), id);
        assert!(GroupId::parse("u_0123").is_err());
        assert!(GroupId::parse("g_../../etc").is_err());
    }

    #[test]
    fn join_codes_are_typed_forgivingly() {
        let code = generate_join_code();
        assert_eq!(
            normalize_join_code(&code.to_lowercase()),
            Some(code.clone())
        );
        assert_eq!(normalize_join_code("abc-def"), Some("ABCDEF".to_string()));
        assert_eq!(
            normalize_join_code("ABCDE0"),
            None,
            "0 is not in the alphabet"
        );
        assert_eq!(normalize_join_code("ABC"), None);
    }
}
