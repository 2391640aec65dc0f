//! The catalog's rows. Inserts are batched multi-row statements inside one transaction per
//! batch, and skip ids already present, so concurrent first starts of several processes are
//! harmless.

use futures_util::TryStreamExt;
use sqlx::{any::AnyRow, AssertSqlSafe, Row};

use super::{row_placeholders, Db};
use crate::{
    catalog::{AudioFeatures, Track},
    domain::{now_ms, TrackId},
};

const COLUMNS: &str = "id, title, artist, album, release_date, release_year, genres, subgenres, popularity, \
     duration_ms, danceability, energy, musical_key, loudness, musical_mode, speechiness, acousticness, \
     instrumentalness, liveness, valence, tempo, source, added_at";
const COLUMN_COUNT: usize = 23;
/// Rows per INSERT. Small on purpose: sqlx's SQLite binding grows faster than linearly with the
/// parameters in one statement (100k tracks: 2.4 s at 20 rows, 7.6 s at 100, 28 s at 400).
const ROWS_PER_STATEMENT: usize = 20;
/// Statements per transaction: one commit per 10,000 rows instead of one per statement.
const STATEMENTS_PER_TRANSACTION: usize = 500;

pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) FROM tracks")
        .fetch_one(db.pool())
        .await?
        .try_get(0)
}

/// Inserts tracks whose id is not stored yet; returns how many were new. `progress` is called
/// after each committed transaction with the number of tracks handled so far.
pub async fn insert(
    db: &Db,
    tracks: &[Track],
    source: &str,
    mut progress: impl FnMut(usize),
) -> Result<u64, sqlx::Error> {
    let added_at = now_ms();
    let mut inserted = 0;
    let mut done = 0;
    for group in tracks.chunks(ROWS_PER_STATEMENT * STATEMENTS_PER_TRANSACTION) {
        let _turn = db.write_turn().await;
        let mut tx = db.pool().begin().await?;
        for batch in group.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO tracks ({COLUMNS}) VALUES {} ON CONFLICT (id) DO NOTHING",
                row_placeholders(batch.len(), COLUMN_COUNT)
            );
            // Only constants and numbered placeholders: nothing from outside reaches the text.
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for t in batch {
                let f = &t.audio_features;
                query = query
                    .bind(t.id.as_str())
                    .bind(t.title.as_str())
                    .bind(t.artist.as_str())
                    .bind(t.album.as_str())
                    .bind(t.release_date.as_deref())
                    .bind(t.release_year.map(i64::from))
                    .bind(serde_json::to_string(&t.genres).expect("strings serialize"))
                    .bind(serde_json::to_string(&t.subgenres).expect("strings serialize"))
                    .bind(i64::from(t.popularity))
                    .bind(i64::from(t.duration_ms))
                    .bind(f64::from(f.danceability))
                    .bind(f64::from(f.energy))
                    .bind(i64::from(f.key))
                    .bind(f64::from(f.loudness))
                    .bind(i64::from(f.mode))
                    .bind(f64::from(f.speechiness))
                    .bind(f64::from(f.acousticness))
                    .bind(f64::from(f.instrumentalness))
                    .bind(f64::from(f.liveness))
                    .bind(f64::from(f.valence))
                    .bind(f64::from(f.tempo))
                    .bind(source)
                    .bind(added_at);
            }
            inserted += query.execute(&mut *tx).await?.rows_affected();
            done += batch.len();
        }
        tx.commit().await?;
        progress(done);
    }
    Ok(inserted)
}

/// Every track, in id order. Rows are streamed and converted one at a time, so a million-track
/// catalog never holds all raw rows in memory at once.
pub async fn load_all(db: &Db) -> Result<Vec<Track>, sqlx::Error> {
    let expected = count(db).await?;
    let mut out = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    let sql = format!("SELECT {COLUMNS} FROM tracks ORDER BY id");
    let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(db.pool());
    while let Some(row) = rows.try_next().await? {
        out.push(track_from_row(&row)?);
    }
    Ok(out)
}

fn decode_err(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

fn track_from_row(row: &AnyRow) -> Result<Track, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let list = |column: &str| -> Result<Vec<String>, sqlx::Error> {
        let raw: String = row.try_get(column)?;
        serde_json::from_str(&raw).map_err(|e| decode_err(format!("tracks.{column} of {id}: {e}")))
    };
    let float =
        |column: &str| -> Result<f32, sqlx::Error> { Ok(row.try_get::<f64, _>(column)? as f32) };
    let small = |column: &str| -> Result<i64, sqlx::Error> { row.try_get::<i64, _>(column) };
    Ok(Track {
        id: TrackId::parse(&id).map_err(decode_err)?,
        title: row.try_get("title")?,
        artist: row.try_get("artist")?,
        album: row.try_get("album")?,
        release_date: row.try_get("release_date")?,
        release_year: row
            .try_get::<Option<i64>, _>("release_year")?
            .map(|y| y as i32),
        genres: list("genres")?,
        subgenres: list("subgenres")?,
        popularity: small("popularity")?.clamp(0, 100) as u8,
        duration_ms: small("duration_ms")?.max(0) as u32,
        audio_features: AudioFeatures {
            danceability: float("danceability")?,
            energy: float("energy")?,
            key: small("musical_key")?.clamp(-1, 11) as i8,
            loudness: float("loudness")?,
            mode: small("musical_mode")?.clamp(0, 1) as u8,
            speechiness: float("speechiness")?,
            acousticness: float("acousticness")?,
            instrumentalness: float("instrumentalness")?,
            liveness: float("liveness")?,
            valence: float("valence")?,
            tempo: float("tempo")?,
        },
    })
}
