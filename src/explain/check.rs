//! Decides whether a language model's answer may be shown. It must read as two to four plain
//! sentences, mention something real about the track, and name no genre the facts do not hold;
//! anything else is junk and the template is used instead.

use super::facts::Facts;

pub const MIN_CHARS: usize = 20;
pub const MAX_CHARS: usize = 600;
const MAX_SENTENCES: usize = 4;

/// Words that a trait may be mentioned by ("high-energy" may be called "energetic").
const TRAIT_WORDS: &[(&str, &[&str])] = &[
    ("high-energy", &["energy", "energetic"]),
    ("calm", &["calm", "mellow", "gentle"]),
    ("very danceable", &["dance", "danceable"]),
    ("upbeat", &["upbeat", "cheerful", "happy", "bright"]),
    (
        "melancholic",
        &["melancholic", "melancholy", "sad", "moody"],
    ),
    ("acoustic", &["acoustic"]),
    ("mostly instrumental", &["instrumental"]),
    ("rap-like vocals", &["rap", "spoken", "rapped"]),
    ("recorded live", &["live"]),
];

/// The accepted text (trimmed, outer quotes removed), or why it was rejected.
pub fn accept(text: &str, facts: &Facts, catalog_genres: &[String]) -> Result<String, String> {
    let text = text.trim();
    // A model sometimes wraps its whole answer in quotes; quotes inside it stay.
    let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => inner.trim(),
        _ => text,
    };
    let chars = text.chars().count();
    if chars < MIN_CHARS {
        return Err(format!("too short ({chars} characters)"));
    }
    if chars > MAX_CHARS {
        return Err(format!("too long ({chars} characters)"));
    }
    if let Some(marker) = ["```", "http://", "https://", "<", "{", "}", "\u{fffd}"]
        .iter()
        .find(|m| text.contains(**m))
    {
        return Err(format!("contains markup or links ({marker:?})"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err("contains control characters".into());
    }
    let sentences = text
        .split(['.', '!', '?'])
        .filter(|s| s.chars().any(char::is_alphabetic))
        .count();
    if sentences > MAX_SENTENCES {
        return Err(format!("{sentences} sentences"));
    }
    let lower = text.to_lowercase();
    if !mentions_the_track(&lower, facts) {
        return Err("mentions nothing about the track".into());
    }
    if let Some(genre) = invented_genre(&lower, facts, catalog_genres) {
        return Err(format!(
            "names the genre {genre:?}, which the facts do not hold"
        ));
    }
    Ok(text.to_string())
}

fn mentions_the_track(lower: &str, facts: &Facts) -> bool {
    let track = &facts.track;
    let named = [&track.title, &track.artist]
        .iter()
        .any(|name| name.chars().count() >= 2 && lower.contains(&name.to_lowercase()));
    let genre = track
        .genres
        .iter()
        .any(|g| has_word(lower, &g.to_lowercase()));
    let feature = track.traits.iter().any(|t| {
        TRAIT_WORDS
            .iter()
            .filter(|(name, _)| name == t)
            .flat_map(|(_, words)| words.iter())
            .any(|w| has_word(lower, w))
    });
    named || genre || feature || lower.contains("bpm")
}

/// A catalog genre named in the text that neither the track nor the audience has.
fn invented_genre<'a>(lower: &str, facts: &Facts, catalog_genres: &'a [String]) -> Option<&'a str> {
    let allowed = |genre: &str| {
        facts
            .track
            .genres
            .iter()
            .chain(&facts.audience.top_genres)
            .any(|g| g.eq_ignore_ascii_case(genre) || g.to_lowercase().contains(genre))
            || facts.track.traits.iter().any(|t| t.contains(genre))
            || facts.track.title.to_lowercase().contains(genre)
            || facts.track.artist.to_lowercase().contains(genre)
    };
    catalog_genres
        .iter()
        .map(String::as_str)
        .find(|genre| has_word(lower, genre) && !allowed(genre))
}

/// `word` occurs in `text` with no letter or digit right before or after it.
fn has_word(text: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::facts::{Audience, TrackFacts};

    fn facts() -> Facts {
        Facts {
            track: TrackFacts {
                id: "t".into(),
                title: "Midnight City".into(),
                artist: "M83".into(),
                genres: vec!["edm".into()],
                traits: vec!["high-energy".into(), "very danceable".into()],
                tempo_bpm: 105,
            },
            audience: Audience {
                kind: "listener",
                size: 1,
                top_genres: vec!["pop".into()],
                leanings: vec![],
            },
            signals: vec![],
            strategy: None,
        }
    }

    fn genres() -> Vec<String> {
        ["pop", "rap", "rock", "latin", "r&b", "edm"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn a_grounded_answer_passes_with_its_quotes_removed() {
        let text = "\"Its energetic edm pulse suits you, a pop fan who likes to dance.\"";
        assert_eq!(
            accept(text, &facts(), &genres()).unwrap(),
            "Its energetic edm pulse suits you, a pop fan who likes to dance."
        );
    }

    #[test]
    fn junk_is_rejected_with_a_reason() {
        let f = facts();
        let g = genres();
        assert!(accept("Nice.", &f, &g).unwrap_err().contains("too short"));
        assert!(accept(&"energetic ".repeat(80), &f, &g)
            .unwrap_err()
            .contains("too long"));
        assert!(accept("{\"choices\": \"energetic edm\"}", &f, &g)
            .unwrap_err()
            .contains("markup"));
        assert!(accept("Listen at https://x.y, it is energetic.", &f, &g)
            .unwrap_err()
            .contains("markup"));
        assert!(
            accept("You will love this song a lot, trust me on it.", &f, &g)
                .unwrap_err()
                .contains("nothing about the track")
        );
        assert!(accept("One. Two. Three edm. Four. Five.", &f, &g)
            .unwrap_err()
            .contains("5 sentences"));
    }

    #[test]
    fn a_genre_outside_the_facts_is_an_invention() {
        let err = accept(
            "A high-energy rock anthem for your edm nights.",
            &facts(),
            &genres(),
        )
        .unwrap_err();
        assert!(err.contains("\"rock\""), "{err}");
        // Word boundaries: "popular" is not "pop", "rocking" is not "rock".
        assert!(accept("A popular, rocking edm track for you.", &facts(), &genres()).is_ok());
    }
}
