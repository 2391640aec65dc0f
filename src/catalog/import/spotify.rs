//! The TidyTuesday `spotify_songs.csv` schema: one row per (track, playlist). Rows of one track
//! are merged; its genres and sub-genres are those of every playlist it appears in, in order of
//! first appearance.

use std::{collections::HashMap, io::Read};

use serde::Deserialize;

use super::{audio_features_of, check_headers, ImportReport, RawTrack};
use crate::catalog::Track;
#[cfg(doc)]
use crate::catalog::AUDIO_FEATURE_NAMES;

#[derive(Debug, Deserialize)]
struct Row {
    track_id: String,
    track_name: String,
    track_artist: String,
    track_popularity: u8,
    track_album_name: String,
    track_album_release_date: String,
    playlist_genre: String,
    playlist_subgenre: String,
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
    duration_ms: u32,
}

/// The columns besides the audio features (see [`AUDIO_FEATURE_NAMES`]).
const COLUMNS: &[&str] = &[
    "track_id",
    "track_name",
    "track_artist",
    "track_popularity",
    "track_album_name",
    "track_album_release_date",
    "playlist_genre",
    "playlist_subgenre",
    "duration_ms",
];

pub fn parse_spotify_songs(reader: impl Read) -> anyhow::Result<ImportReport> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    check_headers(csv.headers()?, COLUMNS)?;
    let mut report = ImportReport::default();
    let mut position: HashMap<String, usize> = HashMap::new();
    for result in csv.deserialize::<Row>() {
        report.rows += 1;
        let row = match result {
            Ok(row) => row,
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line());
                report.skip(line, err);
                continue;
            }
        };
        let line = report.rows as u64 + 1;
        let genre = row.playlist_genre.to_lowercase();
        let subgenre = row.playlist_subgenre.to_lowercase();
        if let Some(&i) = position.get(&row.track_id) {
            let track: &mut Track = &mut report.tracks[i];
            if !genre.is_empty() && !track.genres.contains(&genre) {
                track.genres.push(genre);
            }
            if !subgenre.is_empty() && !track.subgenres.contains(&subgenre) {
                track.subgenres.push(subgenre);
            }
            continue;
        }
        match track_from(row, genre, subgenre) {
            Ok(track) => {
                position.insert(track.id.as_str().to_string(), report.tracks.len());
                report.tracks.push(track);
            }
            Err(reason) => report.skip(line, reason),
        }
    }
    Ok(report)
}

fn track_from(row: Row, genre: String, subgenre: String) -> Result<Track, String> {
    let audio_features = audio_features_of!(row);
    RawTrack {
        id: row.track_id,
        title: row.track_name,
        artist: row.track_artist,
        album: row.track_album_name,
        release_date: row.track_album_release_date,
        genres: Some(genre).into_iter().filter(|g| !g.is_empty()).collect(),
        subgenres: Some(subgenre)
            .into_iter()
            .filter(|g| !g.is_empty())
            .collect(),
        popularity: row.track_popularity,
        duration_ms: row.duration_ms,
        audio_features,
    }
    .into_track()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "track_id,track_name,track_artist,track_popularity,track_album_id,track_album_name,track_album_release_date,playlist_name,playlist_id,playlist_genre,playlist_subgenre,danceability,energy,key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,duration_ms";

    #[test]
    fn merges_playlist_rows_of_one_track() {
        let csv = format!(
            "{HEADER}\n\
             6f807x0ima9a1j3VPbc7VN,I Don't Care,Ed Sheeran,66,2oCs,Album,2019-06-14,Pop Remix,37i9,pop,dance pop,0.748,0.916,6,-2.634,1,0.0583,0.102,0,0.0653,0.518,122.036,194754\n\
             6f807x0ima9a1j3VPbc7VN,I Don't Care,Ed Sheeran,66,2oCs,Album,2019-06-14,Other,99xx,edm,pop edm,0.748,0.916,6,-2.634,1,0.0583,0.102,0,0.0653,0.518,122.036,194754\n\
             0r7CVbZTWZgbTCYdfa2P31,Memories,Maroon 5,67,63rP,Memories,2019,Pop Remix,37i9,pop,dance pop,0.726,0.815,11,-4.969,1,0.0373,0.0724,0.00421,0.357,0.693,99.972,162600\n"
        );
        let report = parse_spotify_songs(csv.as_bytes()).unwrap();
        assert_eq!(report.rows, 3);
        assert_eq!(report.skipped, 0, "{:?}", report.problems);
        assert_eq!(report.tracks.len(), 2);
        assert_eq!(report.tracks[0].genres, vec!["pop", "edm"]);
        assert_eq!(report.tracks[0].subgenres, vec!["dance pop", "pop edm"]);
        assert_eq!(report.tracks[1].release_year, Some(2019));
        assert_eq!(report.tracks[1].audio_features.key, 11);
    }

    #[test]
    fn bad_rows_are_skipped_with_their_line() {
        let csv = format!(
            "{HEADER}\n\
             abc,T,A,not-a-number,x,Al,2019,P,p,pop,dance pop,0.5,0.5,1,-5,1,0.1,0.1,0,0.1,0.5,120,1000\n\
             def,T,A,50,x,Al,2019,P,p,pop,dance pop,1.5,0.5,1,-5,1,0.1,0.1,0,0.1,0.5,120,1000\n\
             ghi,T,A,50,x,Al,2019,P,p,pop,dance pop,0.5,0.5,1,-5,1,0.1,0.1,0,0.1,0.5,120,1000\n"
        );
        let report = parse_spotify_songs(csv.as_bytes()).unwrap();
        assert_eq!(report.tracks.len(), 1);
        assert_eq!(report.skipped, 2);
        assert!(
            report.problems[0].starts_with("line 2"),
            "{:?}",
            report.problems
        );
        assert!(
            report.problems[1].contains("danceability"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn missing_columns_fail_the_file() {
        let err = parse_spotify_songs("track_id,track_name\nx,y\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("track_artist"), "{err}");
    }
}
