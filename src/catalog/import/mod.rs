//! Parsers that turn catalog files into [`Track`]s. They never touch the database; the caller
//! stores the result (see `storage::tracks::insert`). A bad row is skipped and reported with its
//! line number; a missing column fails the whole file, since every row would be wrong.

mod generic;
mod spotify;

pub use generic::{generic_columns, parse_generic, write_generic};
pub use spotify::parse_spotify_songs;

use super::{release_year, AudioFeatures, Track, AUDIO_FEATURE_NAMES};
use crate::domain::TrackId;

/// How many skipped-row reasons a report keeps (the count covers all of them).
const MAX_REPORTED_PROBLEMS: usize = 20;

#[derive(Debug, Default)]
pub struct ImportReport {
    /// Data rows read (excluding the header).
    pub rows: usize,
    pub tracks: Vec<Track>,
    pub skipped: usize,
    /// The first few reasons rows were skipped, each with its line number.
    pub problems: Vec<String>,
}

impl ImportReport {
    fn skip(&mut self, line: u64, reason: impl std::fmt::Display) {
        self.skipped += 1;
        if self.problems.len() < MAX_REPORTED_PROBLEMS {
            self.problems.push(format!("line {line}: {reason}"));
        }
    }
}

/// The audio-feature columns of a CSV row struct, which every format names like Spotify does.
macro_rules! audio_features_of {
    ($row:expr) => {
        $crate::catalog::AudioFeatures {
            danceability: $row.danceability,
            energy: $row.energy,
            key: $row.key,
            loudness: $row.loudness,
            mode: $row.mode,
            speechiness: $row.speechiness,
            acousticness: $row.acousticness,
            instrumentalness: $row.instrumentalness,
            liveness: $row.liveness,
            valence: $row.valence,
            tempo: $row.tempo,
        }
    };
}
pub(crate) use audio_features_of;

/// What every catalog format provides, before the checks that make it a [`Track`].
struct RawTrack {
    id: String,
    title: String,
    artist: String,
    album: String,
    release_date: String,
    genres: Vec<String>,
    subgenres: Vec<String>,
    popularity: u8,
    duration_ms: u32,
    audio_features: AudioFeatures,
}

impl RawTrack {
    /// The row as a track, or the reason it cannot be one (naming the track).
    fn into_track(self) -> Result<Track, String> {
        let id = TrackId::parse(&self.id)?;
        if self.title.is_empty() || self.artist.is_empty() {
            return Err(format!("track {id} has no title or artist"));
        }
        if self.genres.is_empty() {
            return Err(format!("track {id} has no genre"));
        }
        if self.popularity > 100 {
            return Err(format!(
                "track {id}: popularity {} is over 100",
                self.popularity
            ));
        }
        self.audio_features
            .validate()
            .map_err(|e| format!("track {id}: {e}"))?;
        let date = Some(self.release_date).filter(|d| !d.is_empty());
        Ok(Track {
            id,
            title: self.title,
            artist: self.artist,
            album: self.album,
            release_year: date.as_deref().and_then(release_year),
            release_date: date,
            genres: self.genres,
            subgenres: self.subgenres,
            popularity: self.popularity,
            duration_ms: self.duration_ms,
            audio_features: self.audio_features,
        })
    }
}

/// Splits a multi-value cell (`pop|dance pop`) into trimmed, lowercase, unique values.
fn split_list(cell: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in cell
        .split('|')
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
    {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// Checks that the header has the format's own `required` columns and every audio feature.
fn check_headers(headers: &csv::StringRecord, required: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = required
        .iter()
        .chain(&AUDIO_FEATURE_NAMES)
        .copied()
        .filter(|c| !headers.iter().any(|h| h.trim() == *c))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "the CSV header lacks required column(s): {}",
            missing.join(", ")
        )
    }
}
