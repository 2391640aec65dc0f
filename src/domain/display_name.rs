use serde::Serialize;

/// A display name: trimmed, 1–64 characters, a single line ([`super::text::check_line`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("display_name must not be empty".into());
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "display_name must be at most {} characters",
                Self::MAX_CHARS
            ));
        }
        super::text::check_line("display_name", trimmed)?;
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::DisplayName;

    #[test]
    fn trims_and_accepts_unicode() {
        assert_eq!(DisplayName::parse("  Zoë 🎧 ").unwrap().as_str(), "Zoë 🎧");
    }

    #[test]
    fn rejects_blank_long_and_control() {
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(65)).is_err());
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
        assert!(DisplayName::parse("a\nb").is_err());
    }
}
