//! Parsers that turn catalog files into [`Track`]s. They never touch the database; the caller
//! stores the result (see `storage::tracks::insert`). A bad row is skipped and reported with its
//! line number; a missing column fails the whole file, since every row would be wrong.

mod generic;
mod spotify;

pub use generic::{parse_generic, write_generic, GENERIC_COLUMNS};
pub use spotify::parse_spotify_songs;

use super::Track;

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

fn check_headers(headers: &csv::StringRecord, required: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = required
        .iter()
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
