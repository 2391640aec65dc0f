//! The explanation without a language model: two or three sentences assembled from the facts
//! alone. Also the fallback whenever the model is absent, slow, failing or talks nonsense.

use super::facts::Facts;

pub fn render(facts: &Facts) -> String {
    let track = &facts.track;
    let mut sentences = Vec::new();

    let genre = track
        .genres
        .first()
        .map(|g| format!(" {g}"))
        .unwrap_or_default();
    let traits = join(&track.traits);
    sentences.push(if traits.is_empty() {
        format!(
            "\"{}\" by {} is a{} track at about {} BPM.",
            track.title, track.artist, genre, track.tempo_bpm
        )
    } else {
        format!(
            "\"{}\" by {} is a {}{} track at about {} BPM.",
            track.title, track.artist, traits, genre, track.tempo_bpm
        )
    });

    let audience = &facts.audience;
    let who = if audience.kind == "group" {
        "your group"
    } else {
        "you"
    };
    let shared: Vec<&String> = track
        .genres
        .iter()
        .filter(|g| audience.top_genres.contains(g))
        .collect();
    if !shared.is_empty() {
        let liked = if audience.kind == "group" {
            "the members keep coming back to"
        } else {
            "you like most"
        };
        sentences.push(format!(
            "It sits in {}, one of the genres {liked}.",
            join(&shared.iter().map(|g| g.to_string()).collect::<Vec<_>>())
        ));
    } else if let Some(lean) = audience.leanings.first() {
        let taste = if audience.kind == "group" {
            "the group's taste runs"
        } else {
            "your taste runs"
        };
        sentences.push(format!("It fits how {taste}: {lean}."));
    }

    if let Some(signal) = facts.signals.first() {
        sentences.push(format!(
            "The strongest reason Chorus picked it for {who}: {}.",
            signal.label
        ));
    } else if let Some(strategy) = &facts.strategy {
        sentences.push(format!("It came from the {strategy} list for {who}."));
    }
    sentences.join(" ")
}

/// "a", "a and b", "a, b and c".
fn join(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::facts::{Audience, Signal, TrackFacts};

    fn facts(kind: &'static str, genres: &[&str]) -> Facts {
        Facts {
            track: TrackFacts {
                id: "t".into(),
                title: "Song".into(),
                artist: "Band".into(),
                genres: vec!["rock".into()],
                traits: vec!["high-energy".into(), "upbeat".into()],
                tempo_bpm: 128,
            },
            audience: Audience {
                kind,
                size: 3,
                top_genres: genres.iter().map(|g| g.to_string()).collect(),
                leanings: vec!["more energetic than most music".into()],
            },
            signals: vec![Signal {
                label: "close to your taste in the item space".into(),
                contribution: 0.4,
            }],
            strategy: Some("hybrid".into()),
        }
    }

    #[test]
    fn mentions_the_tracks_real_features_and_the_shared_genre() {
        let text = render(&facts("listener", &["rock", "pop"]));
        assert_eq!(
            text,
            "\"Song\" by Band is a high-energy and upbeat rock track at about 128 BPM. It sits in \
             rock, one of the genres you like most. The strongest reason Chorus picked it for \
             you: close to your taste in the item space."
        );
    }

    #[test]
    fn a_group_hears_about_the_group() {
        let text = render(&facts("group", &["jazz"]));
        assert!(
            text.contains("how the group's taste runs: more energetic"),
            "{text}"
        );
        assert!(text.contains("for your group"), "{text}");
    }
}
