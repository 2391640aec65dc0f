//! The prompt for the language model, built from [`Facts`] and nothing else: no user id, no
//! name, no token, no single member's taste. The model is told to use only these facts.

use std::fmt::Write;

use super::facts::Facts;

/// Bumped whenever the wording changes, so cached explanations from an older prompt expire.
pub const PROMPT_VERSION: u32 = 1;

const SYSTEM: &str = "You explain music recommendations for Chorus. Write two or three short, \
friendly sentences in plain text (no lists, no markup, no quotes around the answer) saying why \
the track suits the listener or group. Use only the facts given; never invent features, genres, \
artists, numbers or people. Address the listener as \"you\" or the group as \"your group\".";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

pub fn build(facts: &Facts) -> Prompt {
    let track = &facts.track;
    let mut user = String::new();
    let _ = writeln!(user, "Track: \"{}\" by {}", track.title, track.artist);
    let _ = writeln!(user, "Genres: {}", list_or_none(&track.genres));
    let _ = writeln!(
        user,
        "What stands out in its sound: {}",
        list_or_none(&track.traits)
    );
    let _ = writeln!(user, "Tempo: about {} BPM", track.tempo_bpm);

    let audience = &facts.audience;
    if audience.kind == "group" {
        let _ = writeln!(
            user,
            "Audience: a group; taste below is the aggregate of {} member(s) with history",
            audience.size
        );
    } else {
        let _ = writeln!(user, "Audience: one listener");
    }
    let _ = writeln!(
        user,
        "Their favourite genres: {}",
        list_or_none(&audience.top_genres)
    );
    let _ = writeln!(
        user,
        "How their taste leans: {}",
        list_or_none(&audience.leanings)
    );

    if facts.signals.is_empty() {
        let _ = writeln!(user, "Ranker signals: none recorded");
    } else {
        let _ = writeln!(
            user,
            "Ranker signals that raised the score, strongest first:"
        );
        for signal in &facts.signals {
            let _ = writeln!(
                user,
                "- {} (contribution {:+.2})",
                signal.label, signal.contribution
            );
        }
    }
    if let Some(strategy) = &facts.strategy {
        let _ = writeln!(user, "Picked by the {strategy} strategy");
    }
    user.push_str("Explain in two or three sentences why this track was recommended.");
    Prompt {
        system: SYSTEM.to_string(),
        user,
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none recorded".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::facts::{Audience, Signal, TrackFacts};

    #[test]
    fn the_prompt_states_every_fact_and_only_those() {
        let facts = Facts {
            track: TrackFacts {
                id: "4uLU6hMCjMI75M1A2tKUQC".into(),
                title: "Song".into(),
                artist: "Band".into(),
                genres: vec!["rock".into()],
                traits: vec!["high-energy".into()],
                tempo_bpm: 128,
            },
            audience: Audience {
                kind: "group",
                size: 3,
                top_genres: vec!["rock".into(), "pop".into()],
                leanings: vec![],
            },
            signals: vec![Signal {
                label: "popular right now".into(),
                contribution: 0.25,
            }],
            strategy: Some("least_misery".into()),
        };
        let prompt = build(&facts);
        for expected in [
            "\"Song\" by Band",
            "Genres: rock",
            "high-energy",
            "128 BPM",
            "aggregate of 3 member(s)",
            "rock, pop",
            "How their taste leans: none recorded",
            "- popular right now (contribution +0.25)",
            "least_misery",
        ] {
            assert!(
                prompt.user.contains(expected),
                "{expected} in {}",
                prompt.user
            );
        }
        // The track id is a key, not a fact for the reader.
        assert!(!prompt.user.contains("4uLU6hMCjMI75M1A2tKUQC"));
    }
}
