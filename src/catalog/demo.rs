//! The demo catalog: the real spotify-songs data set, embedded in the binary (3 MB gzip; see
//! `models/data/README.md` for its source and attribution) so a fresh server has music to offer
//! with no files to find.

use std::io::Read;

use anyhow::Context;
use flate2::read::GzDecoder;

use super::import::{parse_spotify_songs, ImportReport};

static SPOTIFY_SONGS_GZ: &[u8] = include_bytes!("../../models/data/spotify_songs.csv.gz");

/// Name recorded as the `source` of tracks loaded from here.
pub const SOURCE: &str = "spotify-songs";

pub fn parse() -> anyhow::Result<ImportReport> {
    parse_spotify_songs(csv()?.as_slice())
}

/// The embedded CSV itself (one row per track and playlist).
pub fn csv() -> anyhow::Result<Vec<u8>> {
    let mut csv = Vec::with_capacity(8 << 20);
    GzDecoder::new(SPOTIFY_SONGS_GZ)
        .read_to_end(&mut csv)
        .context("decompressing the embedded demo catalog")?;
    Ok(csv)
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_catalog_is_the_full_data_set() {
        let report = super::parse().unwrap();
        assert_eq!(report.rows, 32_833);
        assert_eq!(report.tracks.len(), 28_356);
        assert_eq!(report.skipped, 0, "{:?}", report.problems);
    }
}
