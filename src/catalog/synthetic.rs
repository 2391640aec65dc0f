//! A seeded generator of synthetic catalogs and listeners, for load tests at any size (10^6
//! tracks in seconds). Same seed, same output.
//!
//! - Genres and sub-genres are the six of spotify-songs with four sub-genres each. Audio features
//!   are drawn per genre from normal distributions whose means and spreads were measured on
//!   spotify-songs (e.g. edm: energy 0.80 ± 0.14, rap: speechiness 0.20 ± 0.13), clamped to their
//!   valid ranges, so features correlate with genre as in real data.
//! - Popularity is Zipfian: tracks get a random rank r, a listener picks a track with probability
//!   ∝ r^-ZIPF_EXPONENT, and the stored 0–100 `popularity` is that weight on a log scale.
//! - A listener has one to three favourite genres with random weights; their interactions (a
//!   log-normal count, median ≈ 30) pick a genre by weight (10% of the time any genre) and then a
//!   track by its Zipf weight within that genre. Weights are play counts; timestamps rise over
//!   90 days.

use rand::{rngs::StdRng, RngExt, SeedableRng};

use super::{AudioFeatures, Track};
use crate::domain::TrackId;

pub const ZIPF_EXPONENT: f64 = 1.0;

struct GenreProfile {
    name: &'static str,
    subgenres: [&'static str; 4],
    /// (mean, standard deviation) of danceability, energy, loudness, speechiness, acousticness,
    /// instrumentalness, liveness, valence, tempo, duration in seconds.
    features: [(f64, f64); 10],
}

const GENRES: [GenreProfile; 6] = [
    GenreProfile {
        name: "edm",
        subgenres: [
            "electro house",
            "big room",
            "pop edm",
            "progressive electro house",
        ],
        features: [
            (0.655, 0.124),
            (0.802, 0.139),
            (-5.43, 2.37),
            (0.087, 0.071),
            (0.082, 0.145),
            (0.219, 0.326),
            (0.212, 0.172),
            (0.401, 0.226),
            (125.8, 15.3),
            (222.5, 69.2),
        ],
    },
    GenreProfile {
        name: "latin",
        subgenres: ["tropical", "latin pop", "reggaeton", "latin hip hop"],
        features: [
            (0.713, 0.115),
            (0.708, 0.152),
            (-6.26, 2.87),
            (0.103, 0.088),
            (0.211, 0.214),
            (0.044, 0.168),
            (0.181, 0.151),
            (0.606, 0.222),
            (118.6, 29.1),
            (216.9, 48.4),
        ],
    },
    GenreProfile {
        name: "pop",
        subgenres: [
            "dance pop",
            "post-teen pop",
            "electropop",
            "indie poptimism",
        ],
        features: [
            (0.639, 0.128),
            (0.701, 0.171),
            (-6.32, 2.62),
            (0.074, 0.068),
            (0.171, 0.219),
            (0.060, 0.184),
            (0.177, 0.136),
            (0.504, 0.220),
            (120.7, 24.7),
            (217.8, 45.3),
        ],
    },
    GenreProfile {
        name: "r&b",
        subgenres: [
            "urban contemporary",
            "hip pop",
            "new jack swing",
            "neo soul",
        ],
        features: [
            (0.670, 0.138),
            (0.591, 0.179),
            (-7.87, 2.89),
            (0.117, 0.107),
            (0.260, 0.256),
            (0.029, 0.122),
            (0.175, 0.140),
            (0.531, 0.226),
            (114.2, 28.6),
            (237.6, 57.8),
        ],
    },
    GenreProfile {
        name: "rap",
        subgenres: ["hip hop", "southern hip hop", "gangster rap", "trap"],
        features: [
            (0.718, 0.136),
            (0.651, 0.170),
            (-7.04, 3.05),
            (0.198, 0.132),
            (0.192, 0.219),
            (0.076, 0.230),
            (0.192, 0.149),
            (0.505, 0.225),
            (120.7, 31.6),
            (214.2, 60.3),
        ],
    },
    GenreProfile {
        name: "rock",
        subgenres: ["album rock", "classic rock", "permanent wave", "hard rock"],
        features: [
            (0.521, 0.140),
            (0.733, 0.194),
            (-7.59, 3.38),
            (0.058, 0.045),
            (0.145, 0.210),
            (0.062, 0.174),
            (0.203, 0.170),
            (0.537, 0.229),
            (125.0, 28.1),
            (248.6, 65.5),
        ],
    },
];

const TITLE_WORDS: &[&str] = &[
    "love",
    "night",
    "fire",
    "heart",
    "dance",
    "summer",
    "gold",
    "light",
    "dream",
    "wild",
    "city",
    "rain",
    "blue",
    "echo",
    "storm",
    "neon",
    "river",
    "ghost",
    "paradise",
    "midnight",
    "sugar",
    "thunder",
    "velvet",
    "electric",
    "forever",
    "rebel",
    "shadow",
    "wave",
    "crystal",
    "highway",
    "moon",
    "sun",
    "road",
    "kiss",
    "young",
    "free",
    "lost",
    "home",
    "golden",
    "falling",
    "silver",
    "diamond",
    "running",
    "burning",
    "starlight",
    "horizon",
    "gravity",
    "cherry",
    "satellite",
];
const NAME_SYLLABLES: &[&str] = &[
    "ka", "ri", "lo", "ma", "zen", "tor", "vi", "sa", "nel", "do", "ra", "mi", "lu", "xo", "bel",
    "an", "ti", "ko", "ve", "ja", "son", "ly", "dre", "na", "el", "ro", "fa", "quin", "ze", "mo",
];

pub struct SyntheticUser {
    pub id: String,
    /// (track id, play count, unix seconds), oldest first.
    pub interactions: Vec<(TrackId, u32, i64)>,
}

/// A standard normal draw (Box–Muller), so the generator needs no extra crate.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn draw(rng: &mut StdRng, (mean, sd): (f64, f64), lo: f64, hi: f64) -> f32 {
    (mean + sd * normal(rng)).clamp(lo, hi) as f32
}

fn name(rng: &mut StdRng, syllables: std::ops::RangeInclusive<usize>) -> String {
    let n = rng.random_range(syllables);
    let mut s: String = (0..n)
        .map(|_| NAME_SYLLABLES[rng.random_range(0..NAME_SYLLABLES.len())])
        .collect();
    s[..1].make_ascii_uppercase();
    s
}

fn title(rng: &mut StdRng) -> String {
    let words = rng.random_range(1..=3);
    (0..words)
        .map(|_| {
            let mut w = TITLE_WORDS[rng.random_range(0..TITLE_WORDS.len())].to_string();
            w[..1].make_ascii_uppercase();
            w
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `n` tracks, `syn-0000001` onwards. Ranks (1 = most popular) are a random permutation.
pub fn tracks(n: usize, seed: u64) -> Vec<Track> {
    let mut rng = StdRng::seed_from_u64(seed);
    let artists: Vec<String> = (0..(n / 8).max(1)).map(|_| name(&mut rng, 2..=3)).collect();
    let mut ranks: Vec<usize> = (1..=n).collect();
    for i in (1..n).rev() {
        ranks.swap(i, rng.random_range(0..=i));
    }
    (0..n)
        .map(|i| {
            let genre = &GENRES[rng.random_range(0..GENRES.len())];
            let f = genre.features;
            let year = rng.random_range(1965..=2020);
            let weight = (ranks[i] as f64).powf(-ZIPF_EXPONENT);
            let popularity = (100.0 * (weight * n as f64).ln_1p() / (n as f64).ln_1p())
                .round()
                .clamp(0.0, 100.0) as u8;
            Track {
                id: TrackId::parse(&format!("syn-{:07}", i + 1)).expect("valid synthetic id"),
                title: title(&mut rng),
                artist: artists[rng.random_range(0..artists.len())].clone(),
                album: title(&mut rng),
                release_date: Some(year.to_string()),
                release_year: Some(year),
                genres: vec![genre.name.to_string()],
                subgenres: vec![genre.subgenres[rng.random_range(0..4)].to_string()],
                popularity,
                duration_ms: (draw(&mut rng, f[9], 30.0, 900.0) * 1000.0) as u32,
                audio_features: AudioFeatures {
                    danceability: draw(&mut rng, f[0], 0.0, 1.0),
                    energy: draw(&mut rng, f[1], 0.0, 1.0),
                    key: rng.random_range(0..12),
                    loudness: draw(&mut rng, f[2], -60.0, 0.0),
                    mode: rng.random_range(0..2),
                    speechiness: draw(&mut rng, f[3], 0.0, 1.0),
                    acousticness: draw(&mut rng, f[4], 0.0, 1.0),
                    instrumentalness: draw(&mut rng, f[5], 0.0, 1.0),
                    liveness: draw(&mut rng, f[6], 0.0, 1.0),
                    valence: draw(&mut rng, f[7], 0.0, 1.0),
                    tempo: draw(&mut rng, f[8], 50.0, 220.0),
                },
            }
        })
        .collect()
}

/// Cumulative Zipf weights per genre, for sampling a track within a genre.
struct GenreSampler {
    members: Vec<Vec<u32>>,
    cumulative: Vec<Vec<f64>>,
}

impl GenreSampler {
    fn new(tracks: &[Track]) -> Self {
        let mut members = vec![Vec::new(); GENRES.len()];
        for (i, t) in tracks.iter().enumerate() {
            if let Some(g) = GENRES
                .iter()
                .position(|g| t.genres.first().is_some_and(|x| x == g.name))
            {
                members[g].push(i as u32);
            }
        }
        let cumulative = members
            .iter_mut()
            .map(|list| {
                // Most popular first, so rank within the genre follows popularity.
                list.sort_by_key(|&i| std::cmp::Reverse(tracks[i as usize].popularity));
                let mut total = 0.0;
                list.iter()
                    .enumerate()
                    .map(|(rank, _)| {
                        total += ((rank + 1) as f64).powf(-ZIPF_EXPONENT);
                        total
                    })
                    .collect()
            })
            .collect();
        Self {
            members,
            cumulative,
        }
    }

    fn sample(&self, genre: usize, rng: &mut StdRng) -> Option<u32> {
        let cumulative = &self.cumulative[genre];
        let total = *cumulative.last()?;
        let x = rng.random_range(0.0..total);
        let at = cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len() - 1);
        Some(self.members[genre][at])
    }
}

/// `m` listeners over `tracks`.
pub fn users(tracks: &[Track], m: usize, seed: u64) -> Vec<SyntheticUser> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let sampler = GenreSampler::new(tracks);
    let start: i64 = 1_577_836_800; // 2020-01-01
    let span: i64 = 90 * 24 * 3600;
    (0..m)
        .map(|u| {
            let favourites: Vec<(usize, f64)> = (0..rng.random_range(1..=3))
                .map(|_| {
                    (
                        rng.random_range(0..GENRES.len()),
                        rng.random_range(0.2..1.0),
                    )
                })
                .collect();
            let total: f64 = favourites.iter().map(|f| f.1).sum();
            let count = ((3.4 + 0.8 * normal(&mut rng)).exp().round() as usize).clamp(1, 500);
            let mut times: Vec<i64> = (0..count)
                .map(|_| start + rng.random_range(0..span))
                .collect();
            times.sort_unstable();
            let interactions = times
                .into_iter()
                .filter_map(|ts| {
                    let genre = if rng.random_bool(0.1) {
                        rng.random_range(0..GENRES.len())
                    } else {
                        let mut x = rng.random_range(0.0..total);
                        favourites
                            .iter()
                            .find(|(_, w)| {
                                x -= w;
                                x < 0.0
                            })
                            .map_or(favourites[0].0, |f| f.0)
                    };
                    let track = sampler.sample(genre, &mut rng)?;
                    let plays = 1 + (-rng.random_range(f64::EPSILON..1.0f64).ln() * 3.0) as u32;
                    Some((tracks[track as usize].id.clone(), plays, ts))
                })
                .collect();
            SyntheticUser {
                id: format!("syn-user-{:07}", u + 1),
                interactions,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_catalog() {
        assert_eq!(tracks(200, 7), tracks(200, 7));
        assert_ne!(tracks(200, 7), tracks(200, 8));
    }

    #[test]
    fn tracks_are_valid_and_features_follow_genre() {
        let ts = tracks(6_000, 1);
        for t in &ts {
            t.audio_features.validate().unwrap();
            assert!(t.popularity <= 100);
        }
        let mean = |genre: &str, f: fn(&AudioFeatures) -> f32| {
            let v: Vec<f32> = ts
                .iter()
                .filter(|t| t.genres[0] == genre)
                .map(|t| f(&t.audio_features))
                .collect();
            v.iter().sum::<f32>() / v.len() as f32
        };
        assert!(mean("rap", |f| f.speechiness) > 2.0 * mean("rock", |f| f.speechiness));
        assert!(mean("edm", |f| f.energy) > mean("r&b", |f| f.energy) + 0.1);
    }

    #[test]
    fn popularity_is_heavy_tailed() {
        let ts = tracks(10_000, 3);
        let popular = ts.iter().filter(|t| t.popularity >= 50).count();
        assert!(popular < ts.len() / 5, "{popular}");
        assert_eq!(ts.iter().map(|t| t.popularity).max(), Some(100));
    }

    #[test]
    fn listeners_concentrate_on_favourite_genres_and_popular_tracks() {
        let ts = tracks(5_000, 2);
        let us = users(&ts, 200, 2);
        assert_eq!(us.len(), 200);
        let by_id: std::collections::HashMap<_, _> = ts.iter().map(|t| (t.id.clone(), t)).collect();
        let mut top_genre_share = 0.0;
        for u in &us {
            assert!(!u.interactions.is_empty());
            assert!(u.interactions.windows(2).all(|w| w[0].2 <= w[1].2));
            let mut counts = std::collections::HashMap::new();
            for (id, _, _) in &u.interactions {
                *counts.entry(&by_id[id].genres[0]).or_insert(0usize) += 1;
            }
            top_genre_share += *counts.values().max().unwrap() as f64 / u.interactions.len() as f64;
        }
        // Uniform choice over six genres would give about 1/6 per genre.
        assert!(top_genre_share / us.len() as f64 > 0.4);
        let all: Vec<u8> = us
            .iter()
            .flat_map(|u| u.interactions.iter().map(|(id, _, _)| by_id[id].popularity))
            .collect();
        let mean_pop = all.iter().map(|&p| p as f64).sum::<f64>() / all.len() as f64;
        let catalog_mean = ts.iter().map(|t| t.popularity as f64).sum::<f64>() / ts.len() as f64;
        assert!(
            mean_pop > catalog_mean + 10.0,
            "{mean_pop} vs {catalog_mean}"
        );
    }
}
