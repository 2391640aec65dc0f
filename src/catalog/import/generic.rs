//! The generic catalog CSV, for catalogs that do not come from spotify-songs (and the format the
//! synthetic generator writes). Header required; columns in any order:
//!
//! | column | content |
//! | --- | --- |
//! | `id` | 1–64 chars of `[A-Za-z0-9_:.-]` |
//! | `title`, `artist` | non-empty text |
//! | `album`, `release_date` | text, may be empty; dates as `YYYY[-MM[-DD]]` |
//! | `genres`, `subgenres` | `|`-separated names, e.g. `pop|rock`; `subgenres` may be empty |
//! | `popularity` | integer 0–100 |
//! | `duration_ms` | integer |
//! | `danceability`, `energy`, `speechiness`, `acousticness`, `instrumentalness`, `liveness`, `valence` | 0–1 |
//! | `key` (-1–11), `loudness` (dB), `mode` (0/1), `tempo` (BPM) | numbers |

use std::io::{Read, Write};

use serde::Deserialize;

use super::{audio_features_of, check_headers, split_list, ImportReport, RawTrack};
use crate::catalog::{Track, AUDIO_FEATURE_NAMES};

/// The columns before the audio features.
const BASE_COLUMNS: &[&str] = &[
    "id",
    "title",
    "artist",
    "album",
    "release_date",
    "genres",
    "subgenres",
    "popularity",
    "duration_ms",
];

/// Every column of the generic format, in the order `write_generic` writes them.
pub fn generic_columns() -> Vec<&'static str> {
    BASE_COLUMNS
        .iter()
        .chain(&AUDIO_FEATURE_NAMES)
        .copied()
        .collect()
}

#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    title: String,
    artist: String,
    album: String,
    release_date: String,
    genres: String,
    subgenres: String,
    popularity: u8,
    duration_ms: u32,
    danceability: f32,
    energy: f32,
    key: i8,
    loudness: f32,
    mode: u8,
    speechiness: f32,
    acousticness: f32,
    instrumentalness: f32,
    liveness: f32,
    valence: f32,
    tempo: f32,
}

pub fn parse_generic(reader: impl Read) -> anyhow::Result<ImportReport> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    check_headers(csv.headers()?, BASE_COLUMNS)?;
    let mut report = ImportReport::default();
    let mut seen = std::collections::HashSet::new();
    for result in csv.deserialize::<Row>() {
        report.rows += 1;
        let line = report.rows as u64 + 1;
        match result.map_err(|e| e.to_string()).and_then(track_from) {
            Ok(track) if seen.insert(track.id.clone()) => report.tracks.push(track),
            Ok(track) => report.skip(line, format!("duplicate id {}", track.id)),
            Err(reason) => report.skip(line, reason),
        }
    }
    Ok(report)
}

fn track_from(row: Row) -> Result<Track, String> {
    let audio_features = audio_features_of!(row);
    RawTrack {
        id: row.id,
        title: row.title,
        artist: row.artist,
        album: row.album,
        release_date: row.release_date,
        genres: split_list(&row.genres),
        subgenres: split_list(&row.subgenres),
        popularity: row.popularity,
        duration_ms: row.duration_ms,
        audio_features,
    }
    .into_track()
}

/// Writes tracks in the generic format (header included).
pub fn write_generic<'a>(
    writer: impl Write,
    tracks: impl IntoIterator<Item = &'a Track>,
) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(writer);
    csv.write_record(generic_columns())?;
    for t in tracks {
        let f = &t.audio_features;
        csv.write_record([
            t.id.as_str().to_string(),
            t.title.clone(),
            t.artist.clone(),
            t.album.clone(),
            t.release_date.clone().unwrap_or_default(),
            t.genres.join("|"),
            t.subgenres.join("|"),
            t.popularity.to_string(),
            t.duration_ms.to_string(),
            f.danceability.to_string(),
            f.energy.to_string(),
            f.key.to_string(),
            f.loudness.to_string(),
            f.mode.to_string(),
            f.speechiness.to_string(),
            f.acousticness.to_string(),
            f.instrumentalness.to_string(),
            f.liveness.to_string(),
            f.valence.to_string(),
            f.tempo.to_string(),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::track;

    #[test]
    fn write_then_parse_round_trips() {
        let mut tracks = vec![
            track("a1", "Song, with comma", "Artist \"Q\"", "pop", 40),
            track("b2", "Other", "B", "rock", 3),
        ];
        tracks[1].subgenres = vec![];
        tracks[1].release_date = None;
        tracks[1].release_year = None;
        let mut buf = Vec::new();
        write_generic(&mut buf, &tracks).unwrap();
        let report = parse_generic(buf.as_slice()).unwrap();
        assert_eq!(report.skipped, 0, "{:?}", report.problems);
        assert_eq!(report.tracks, tracks);
    }

    #[test]
    fn duplicate_ids_and_missing_genres_are_skipped() {
        let header = generic_columns().join(",");
        let row = |id: &str, genres: &str| {
            format!("{id},T,A,,,{genres},,10,1000,0.5,0.5,1,-5,1,0.1,0.1,0,0.1,0.5,120")
        };
        let csv = format!(
            "{header}\n{}\n{}\n{}\n",
            row("x", "pop"),
            row("x", "pop"),
            row("y", "")
        );
        let report = parse_generic(csv.as_bytes()).unwrap();
        assert_eq!(report.tracks.len(), 1);
        assert_eq!(report.skipped, 2);
        assert!(report.problems[0].contains("duplicate"));
        assert!(report.problems[1].contains("genre"));
    }
}
