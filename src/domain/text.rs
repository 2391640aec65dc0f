//! The one set of rules for text a client sends that others will see or the store will keep.
//!
//! - NUL never: PostgreSQL refuses it in `TEXT` (SQLite keeps it), so the two stores would
//!   disagree and a stored op could fail forever.
//! - Names and single-line values (display names, group and experiment names, variant names,
//!   `client_msg_id`, `request_id`): no control characters, no line or paragraph separators,
//!   and no bidirectional overrides or isolates (U+202A–U+202E, U+2066–U+2069), which can make
//!   one member's name rewrite how the text after it reads for everyone else.
//! - Free text (an experiment's description): the same, but line breaks and tabs are allowed.

/// Why a value was refused; the message names the field.
pub type TextError = String;

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn refused(field: &str, c: char) -> TextError {
    if c == '\0' {
        format!("{field} must not contain NUL characters")
    } else if is_bidi_control(c) {
        format!(
            "{field} must not contain bidirectional override characters (U+{:04X})",
            c as u32
        )
    } else {
        format!(
            "{field} must not contain control characters (U+{:04X})",
            c as u32
        )
    }
}

/// A name or other single-line value.
pub fn check_line(field: &str, value: &str) -> Result<(), TextError> {
    match value
        .chars()
        .find(|&c| c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        Some(c) => Err(refused(field, c)),
        None => Ok(()),
    }
}

/// Free text: like [`check_line`], but `\n`, `\r` and `\t` are allowed.
pub fn check_text(field: &str, value: &str) -> Result<(), TextError> {
    match value
        .chars()
        .find(|&c| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_bidi_control(c))
    {
        Some(c) => Err(refused(field, c)),
        None => Ok(()),
    }
}

/// The path of the first string (key or value) in a JSON document that holds a NUL, if any.
/// Every JSON body and socket frame goes through this, so NUL never reaches a handler.
pub fn find_nul(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(String::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_nul(v).map(|path| format!("[{i}]{path}"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(format!(".{}", k.replace('\0', "\\u0000")))
            } else {
                find_nul(v).map(|path| format!(".{k}{path}"))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_refuse_nul_controls_separators_and_bidi_overrides() {
        assert!(check_line("name", "Zoë's party 🎧 (العربية)").is_ok());
        for bad in [
            "a\0b",
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "a\u{85}",
            "evil\u{202E}gpj",
            "\u{2066}x",
            "a\u{2028}b",
        ] {
            assert!(check_line("name", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_line("name", "x\u{202E}").unwrap_err(),
            "name must not contain bidirectional override characters (U+202E)"
        );
        assert_eq!(
            check_line("name", "x\0").unwrap_err(),
            "name must not contain NUL characters"
        );
    }

    #[test]
    fn free_text_allows_line_breaks_but_not_the_rest() {
        assert!(check_text("description", "line one\nline two\r\n\tindented").is_ok());
        for bad in ["a\0b", "a\u{1b}[31m", "x\u{202D}"] {
            assert!(check_text("description", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nul_is_found_anywhere_in_a_document() {
        assert_eq!(
            find_nul(&json!({"a": [1, "x", {"b": "y\u{0}"}]})),
            Some(".a[2].b".into())
        );
        assert_eq!(find_nul(&json!({"k\u{0}": 1})), Some(".k\\u0000".into()));
        assert_eq!(find_nul(&json!({"a": "fine", "b": [true, null]})), None);
    }
}
