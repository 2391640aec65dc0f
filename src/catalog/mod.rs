//! The track catalog: loaded from the store once at startup into memory, then shared read-only
//! (`Arc<Catalog>`) by every worker. Lookups by id, genre listing and search need no lock and
//! no database round trip.

pub mod demo;
pub mod import;
pub mod search;
pub mod synthetic;
mod track;

use std::{collections::HashMap, sync::Arc};

use serde::Serialize;
use utoipa::ToSchema;

pub use track::{release_year, AudioFeatures, Track, TrackBrief, AUDIO_FEATURE_NAMES};

use self::search::SearchIndex;

pub const DEFAULT_SEARCH_LIMIT: usize = 20;
pub const MAX_SEARCH_LIMIT: usize = 100;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenreCount {
    pub name: String,
    /// `genre` for top-level genres, `subgenre` for finer ones.
    pub level: &'static str,
    pub tracks: usize,
}

pub struct Catalog {
    /// Shared, so that a list of recommendations holds its tracks without copying them.
    tracks: Vec<Arc<Track>>,
    by_id: HashMap<String, u32>,
    by_popularity: Vec<u32>,
    genres: Vec<GenreCount>,
    index: SearchIndex,
}

impl Catalog {
    pub fn new(tracks: Vec<Track>) -> Self {
        let tracks: Vec<Arc<Track>> = tracks.into_iter().map(Arc::new).collect();
        let by_id = tracks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str().to_string(), i as u32))
            .collect();
        let mut by_popularity: Vec<u32> = (0..tracks.len() as u32).collect();
        by_popularity.sort_by_key(|&i| std::cmp::Reverse(tracks[i as usize].popularity));
        let index =
            SearchIndex::build(tracks.iter().map(|t| [t.title.as_str(), t.artist.as_str()]));
        let genres = count_genres(&tracks);
        Self {
            tracks,
            by_id,
            by_popularity,
            genres,
            index,
        }
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Track> {
        self.by_id.get(id).map(|&i| &*self.tracks[i as usize])
    }

    /// The track's position in [`Catalog::tracks`], which is also its row in the item space.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// The row of a track id a client sent in the field `field`: `invalid_field` when it is
    /// not a track id, `track_not_found` when no track has it.
    pub fn lookup(&self, id: &str, field: &str) -> Result<u32, crate::error::ApiError> {
        use crate::error::{ApiError, ErrorCode};
        let id = crate::domain::TrackId::parse(id)
            .map_err(|e| ApiError::new(ErrorCode::InvalidField, format!("{field}: {e}")))?;
        self.index_of(id.as_str()).ok_or_else(|| {
            ApiError::new(
                ErrorCode::TrackNotFound,
                format!("{field}: no track has id {id}"),
            )
        })
    }

    pub fn track(&self, index: u32) -> &Track {
        &self.tracks[index as usize]
    }

    /// The track at `index`, shared (a recommendation list's copy costs a reference count).
    pub fn shared(&self, index: u32) -> Arc<Track> {
        Arc::clone(&self.tracks[index as usize])
    }

    /// Track positions, most popular first.
    pub fn by_popularity(&self) -> &[u32] {
        &self.by_popularity
    }

    pub fn tracks(&self) -> &[Arc<Track>] {
        &self.tracks
    }

    pub fn genres(&self) -> &[GenreCount] {
        &self.genres
    }

    /// Tracks matching `query` (typo-tolerant, see [`search`]) and, if given, having `genre` as a
    /// genre or sub-genre (case-insensitive). An empty query lists the most popular tracks.
    pub fn search(&self, query: &str, genre: Option<&str>, limit: usize) -> Vec<&Track> {
        let genre = genre
            .map(|g| g.trim().to_lowercase())
            .filter(|g| !g.is_empty());
        let keep = |doc: u32| match &genre {
            None => true,
            Some(g) => self.tracks[doc as usize].has_genre(g),
        };
        let docs: Vec<u32> = if query.trim().is_empty() {
            self.by_popularity
                .iter()
                .copied()
                .filter(|&d| keep(d))
                .take(limit)
                .collect()
        } else {
            self.index.search(query, limit, keep, |doc| {
                u32::from(self.tracks[doc as usize].popularity)
            })
        };
        docs.into_iter()
            .map(|d| &*self.tracks[d as usize])
            .collect()
    }
}

fn count_genres(tracks: &[Arc<Track>]) -> Vec<GenreCount> {
    let mut counts: HashMap<(&'static str, &str), usize> = HashMap::new();
    for track in tracks {
        for g in &track.genres {
            *counts.entry(("genre", g.as_str())).or_default() += 1;
        }
        for g in &track.subgenres {
            *counts.entry(("subgenre", g.as_str())).or_default() += 1;
        }
    }
    let mut genres: Vec<GenreCount> = counts
        .into_iter()
        .map(|((level, name), tracks)| GenreCount {
            name: name.to_string(),
            level,
            tracks,
        })
        .collect();
    genres.sort_by(|a, b| {
        a.level
            .cmp(b.level)
            .then(b.tracks.cmp(&a.tracks))
            .then(a.name.cmp(&b.name))
    });
    genres
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::TrackId;

    pub(crate) fn track(id: &str, title: &str, artist: &str, genre: &str, popularity: u8) -> Track {
        Track {
            id: TrackId::parse(id).unwrap(),
            title: title.into(),
            artist: artist.into(),
            album: "Album".into(),
            release_date: Some("2019-01-01".into()),
            release_year: Some(2019),
            genres: vec![genre.into()],
            subgenres: vec![format!("{genre} sub")],
            popularity,
            duration_ms: 200_000,
            audio_features: AudioFeatures {
                danceability: 0.5,
                energy: 0.5,
                key: 1,
                loudness: -5.0,
                mode: 1,
                speechiness: 0.1,
                acousticness: 0.1,
                instrumentalness: 0.0,
                liveness: 0.1,
                valence: 0.5,
                tempo: 120.0,
            },
        }
    }

    fn catalog() -> Catalog {
        Catalog::new(vec![
            track("a", "Halo", "Beyoncé", "pop", 80),
            track("b", "Crazy in Love", "Beyoncé", "r&b", 90),
            track("c", "Thunderstruck", "AC/DC", "rock", 70),
        ])
    }

    #[test]
    fn finds_by_id_and_lists_genres() {
        let c = catalog();
        assert_eq!(c.get("c").unwrap().title, "Thunderstruck");
        assert!(c.get("zzz").is_none());
        let names: Vec<_> = c
            .genres()
            .iter()
            .filter(|g| g.level == "genre")
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(names, vec!["pop", "r&b", "rock"]);
    }

    #[test]
    fn empty_query_lists_popular_tracks_in_genre() {
        let c = catalog();
        let ids: Vec<_> = c
            .search("", None, 10)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, vec!["b", "a", "c"]);
        let ids: Vec<_> = c
            .search(" ", Some("POP"), 10)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, vec!["a"]);
        assert!(c.search("", Some("polka"), 10).is_empty());
    }

    #[test]
    fn query_ranks_by_match_then_popularity() {
        let c = catalog();
        let ids: Vec<_> = c
            .search("beyonse", None, 10)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, vec!["b", "a"]);
        let ids: Vec<_> = c
            .search("beyonce", Some("pop sub"), 10)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, vec!["a"]);
    }
}
