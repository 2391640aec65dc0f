//! Typo-tolerant, prefix-aware search over track titles and artists.
//!
//! Built once when the catalog loads, then read-only and shared between workers without locks.
//! Text is folded to lowercase ASCII (`Beyoncé` → `beyonce`, `Don't` → `dont`) and split into
//! tokens. Each query token matches vocabulary tokens exactly, as a prefix (the last token only,
//! for search-as-you-type), or within an edit distance that grows with its length (1 typo from
//! 4 characters, 2 from 8). Typo candidates come from a SymSpell-style table of deletion
//! variants, so a lookup touches a handful of entries instead of scanning the vocabulary.
//! Tracks must match every query token; if none does, the best partial matches are returned.

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
};

/// Longest query we look at (characters); longer input is cut, not rejected.
pub const MAX_QUERY_CHARS: usize = 200;
/// Query tokens beyond this many are ignored.
pub const MAX_QUERY_TOKENS: usize = 8;

const COST_EXACT: u32 = 0;
const COST_PREFIX: u32 = 1;
const COST_PER_TYPO: u32 = 2;

pub struct SearchIndex {
    /// Sorted, unique tokens.
    vocab: Vec<Box<str>>,
    /// For each vocabulary token, the sorted documents that contain it.
    postings: Vec<Vec<u32>>,
    /// (hash of a deletion variant, vocabulary token), sorted by hash.
    deletes: Vec<(u64, u32)>,
}

/// Lowercase ASCII tokens of `text`.
pub fn tokenize(text: &str) -> Vec<String> {
    let folded = deunicode::deunicode(text).to_ascii_lowercase().replace(['\'', '`'], "");
    folded
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn allowed_typos(token_len: usize) -> usize {
    match token_len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn hash_of(s: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// All strings obtained by deleting up to `max` bytes of `word` (including `word` itself).
fn deletion_variants(word: &[u8], max: usize, out: &mut HashSet<Vec<u8>>) {
    out.insert(word.to_vec());
    if max == 0 || word.len() <= 1 {
        return;
    }
    for i in 0..word.len() {
        let mut shorter = word.to_vec();
        shorter.remove(i);
        deletion_variants(&shorter, max - 1, out);
    }
}

/// Optimal-string-alignment distance (Damerau–Levenshtein with adjacent swaps), or `None` when
/// it exceeds `max`.
fn bounded_distance(a: &[u8], b: &[u8], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let width = b.len() + 1;
    let mut prev2 = vec![0usize; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur = vec![0usize; width];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

impl SearchIndex {
    /// Indexes documents given as lists of searchable strings (e.g. `[title, artist]`); a
    /// document's number is its position in the iterator.
    pub fn build<'a, I, D>(documents: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: IntoIterator<Item = &'a str>,
    {
        let mut postings_by_token: HashMap<String, Vec<u32>> = HashMap::new();
        for (doc, fields) in documents.into_iter().enumerate() {
            let doc = doc as u32;
            for field in fields {
                for token in tokenize(field) {
                    let list = postings_by_token.entry(token).or_default();
                    if list.last() != Some(&doc) {
                        list.push(doc);
                    }
                }
            }
        }
        let mut entries: Vec<(String, Vec<u32>)> = postings_by_token.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut deletes = Vec::new();
        let mut variants = HashSet::new();
        for (index, (token, _)) in entries.iter().enumerate() {
            // A dictionary token can be within `allowed_typos(query)` of a query only if the
            // query is at most that much longer, so index the deletions such queries need.
            let max = match token.len() {
                0..=2 => 0,
                3..=5 => 1,
                _ => 2,
            };
            variants.clear();
            deletion_variants(token.as_bytes(), max, &mut variants);
            deletes.extend(variants.iter().map(|v| (hash_of(v), index as u32)));
        }
        deletes.sort_unstable();
        let (vocab, postings) = entries
            .into_iter()
            .map(|(token, docs)| (token.into_boxed_str(), docs))
            .unzip();
        Self { vocab, postings, deletes }
    }

    pub fn vocabulary_len(&self) -> usize {
        self.vocab.len()
    }

    /// Vocabulary tokens matching `token`, each with its cost.
    fn matches(&self, token: &str, allow_prefix: bool) -> Vec<(u32, u32)> {
        let mut found: HashMap<u32, u32> = HashMap::new();
        let mut offer = |index: u32, cost: u32| {
            let best = found.entry(index).or_insert(cost);
            *best = (*best).min(cost);
        };
        let start = self.vocab.partition_point(|t| &**t < token);
        if allow_prefix {
            for (offset, candidate) in self.vocab[start..].iter().enumerate() {
                if !candidate.starts_with(token) {
                    break;
                }
                let cost = if candidate.len() == token.len() { COST_EXACT } else { COST_PREFIX };
                offer((start + offset) as u32, cost);
            }
        } else if self.vocab.get(start).is_some_and(|t| &**t == token) {
            offer(start as u32, COST_EXACT);
        }
        let max_typos = allowed_typos(token.len());
        if max_typos > 0 {
            let mut variants = HashSet::new();
            deletion_variants(token.as_bytes(), max_typos, &mut variants);
            for variant in &variants {
                let h = hash_of(variant);
                let first = self.deletes.partition_point(|(k, _)| *k < h);
                for &(_, index) in self.deletes[first..].iter().take_while(|(k, _)| *k == h) {
                    let candidate = self.vocab[index as usize].as_bytes();
                    if let Some(d) = bounded_distance(token.as_bytes(), candidate, max_typos) {
                        offer(index, d as u32 * COST_PER_TYPO);
                    }
                }
            }
        }
        found.into_iter().collect()
    }

    /// Up to `limit` documents for `query`, best first. `keep` filters documents (e.g. by
    /// genre); `rank` breaks ties between equally good matches (higher first, e.g. popularity).
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        keep: impl Fn(u32) -> bool,
        rank: impl Fn(u32) -> u32,
    ) -> Vec<u32> {
        let query: String = query.chars().take(MAX_QUERY_CHARS).collect();
        let mut tokens = tokenize(&query);
        tokens.truncate(MAX_QUERY_TOKENS);
        if tokens.is_empty() || limit == 0 {
            return Vec::new();
        }
        // The last token is still being typed unless the query ends in a separator.
        let typing = query.chars().last().is_some_and(|c| c.is_alphanumeric());
        let last = tokens.len() - 1;

        // Per document: (query tokens matched, summed cost).
        let mut scores: HashMap<u32, (u32, u32)> = HashMap::new();
        for (i, token) in tokens.iter().enumerate() {
            let mut best: HashMap<u32, u32> = HashMap::new();
            for (vocab_index, cost) in self.matches(token, typing && i == last) {
                for &doc in &self.postings[vocab_index as usize] {
                    let entry = best.entry(doc).or_insert(cost);
                    *entry = (*entry).min(cost);
                }
            }
            for (doc, cost) in best {
                let score = scores.entry(doc).or_insert((0, 0));
                score.0 += 1;
                score.1 += cost;
            }
        }
        let all = tokens.len() as u32;
        let mut hits: Vec<(u32, u32, u32, u32)> = scores
            .into_iter()
            .filter(|(doc, _)| keep(*doc))
            .map(|(doc, (matched, cost))| (doc, matched, cost, rank(doc)))
            .collect();
        if hits.iter().any(|h| h.1 == all) {
            hits.retain(|h| h.1 == all);
        }
        let order = |a: &(u32, u32, u32, u32), b: &(u32, u32, u32, u32)| {
            b.1.cmp(&a.1)
                .then(a.2.cmp(&b.2))
                .then(b.3.cmp(&a.3))
                .then(a.0.cmp(&b.0))
        };
        if hits.len() > limit {
            hits.select_nth_unstable_by(limit - 1, order);
            hits.truncate(limit);
        }
        hits.sort_unstable_by(order);
        hits.into_iter().map(|h| h.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> SearchIndex {
        SearchIndex::build([
            ["Halo", "Beyoncé"],
            ["Memories - Dillon Francis Remix", "Maroon 5"],
            ["I Don't Care (with Justin Bieber)", "Ed Sheeran"],
            ["Bohemian Rhapsody", "Queen"],
            ["Crazy in Love", "Beyoncé"],
            ["Love Story", "Taylor Swift"],
        ])
    }

    fn search(index: &SearchIndex, q: &str) -> Vec<u32> {
        index.search(q, 10, |_| true, |_| 0)
    }

    #[test]
    fn tokenize_folds_case_accents_and_apostrophes() {
        assert_eq!(tokenize("Beyoncé – Don't STOP!"), vec!["beyonce", "dont", "stop"]);
    }

    #[test]
    fn distance_counts_swaps_as_one() {
        assert_eq!(bounded_distance(b"queen", b"qeuen", 2), Some(1));
        assert_eq!(bounded_distance(b"halo", b"hello", 1), None);
        assert_eq!(bounded_distance(b"rhapsody", b"rhapsodie", 2), Some(2));
        assert_eq!(bounded_distance(b"rhapsody", b"rapsodie", 2), None);
    }

    #[test]
    fn exact_prefix_and_case_insensitive() {
        let idx = index();
        assert_eq!(search(&idx, "bohemian rhapsody"), vec![3]);
        assert_eq!(search(&idx, "BOHEM"), vec![3]);
        assert_eq!(search(&idx, "beyonce"), vec![0, 4]);
    }

    #[test]
    fn tolerates_typos_scaled_by_length() {
        let idx = index();
        assert_eq!(search(&idx, "bohemain rapsody "), vec![3]);
        assert_eq!(search(&idx, "sheran"), vec![2]);
        // Three-letter tokens allow no typo: "hslo" (4) may, "hal" is a prefix.
        assert_eq!(search(&idx, "hslo "), vec![0]);
        assert!(search(&idx, "qeu ").is_empty());
    }

    #[test]
    fn all_tokens_must_match_when_possible() {
        let idx = index();
        assert_eq!(search(&idx, "love beyonce"), vec![4]);
        // No document has both, so partial matches come back, best first.
        let partial = search(&idx, "love queen");
        assert_eq!(partial.len(), 3);
    }

    #[test]
    fn rank_breaks_ties_and_filter_applies() {
        let idx = index();
        let popular_second = idx.search("beyonce", 10, |_| true, |doc| if doc == 4 { 90 } else { 10 });
        assert_eq!(popular_second, vec![4, 0]);
        assert_eq!(idx.search("beyonce", 10, |doc| doc != 4, |_| 0), vec![0]);
        assert_eq!(idx.search("beyonce", 1, |_| true, |_| 0), vec![0]);
    }

    #[test]
    fn empty_and_junk_queries_return_nothing() {
        let idx = index();
        assert!(search(&idx, "").is_empty());
        assert!(search(&idx, "!!! ---").is_empty());
        assert!(search(&idx, &"x".repeat(10_000)).is_empty());
    }
}
