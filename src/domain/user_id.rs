use std::fmt;

use serde::Serialize;

/// A user id: `u_` followed by a UUIDv7 in simple (32 hex digit) form, so ids sort by creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn generate() -> Self {
        Self(format!("u_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let hex = raw
            .strip_prefix("u_")
            .ok_or_else(|| "user ids start with \"u_\"".to_string())?;
        if hex.len() != 32
            || !hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            return Err("user ids are \"u_\" and 32 lowercase hex digits".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::UserId;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = UserId::generate();
        let b = UserId::generate();
        assert_ne!(a, b);
        assert_eq!(UserId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn rejects_foreign_shapes() {
        assert!(UserId::parse("42").is_err());
        assert!(UserId::parse("u_XYZ").is_err());
        assert!(UserId::parse(&format!("u_{}", "A".repeat(32))).is_err());
    }
}
