use std::fmt;

use serde::{Deserialize, Serialize};

/// A catalog track id: Spotify's 22-character base62 ids, or ids from other catalogs
/// (`syn-000001` for synthetic ones). 1–64 characters of `[A-Za-z0-9_:.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackId(String);

impl TrackId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(format!(
                "track ids are 1 to {} characters long",
                Self::MAX_LEN
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-')))
        {
            return Err(format!("track ids may not contain {bad:?}"));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TrackId {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<TrackId> for String {
    fn from(id: TrackId) -> String {
        id.0
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::TrackId;

    #[test]
    fn accepts_spotify_and_synthetic_ids() {
        assert!(TrackId::parse("6f807x0ima9a1j3VPbc7VN").is_ok());
        assert!(TrackId::parse("syn-000042").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_odd_characters() {
        assert!(TrackId::parse("").is_err());
        assert!(TrackId::parse(&"a".repeat(65)).is_err());
        assert!(TrackId::parse("a b").is_err());
        assert!(TrackId::parse("../etc").is_err());
        assert!(TrackId::parse("é").is_err());
    }
}
