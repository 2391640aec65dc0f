//! Typo-tolerant, prefix-aware search over track titles and artists.
//!
//! Built once when the catalog loads, then read-only and shared between workers without locks.
//! Text is folded to lowercase ASCII (`Beyoncé` → `beyonce`, `Don't` → `dont`) and split into
//! tokens. Each query token matches vocabulary tokens exactly, as a prefix (the last token only,
//! for search-as-you-type), or within an edit distance that grows with its length (1 typo from
//! 4 characters, 2 from 8). Typo candidates come from a SymSpell-style table of deletion
//! variants, so a lookup touches a handful of entries instead of scanning the vocabulary.
//! Tracks must match every query token; if none does, the best partial matches are returned.
//! Ranking: query tokens matched, then match cost (typos, unfinished prefixes), then whether
//! some field is matched whole (`beyonce` ranks Beyoncé's own tracks above a duet that names her
//! in its title), then the caller's tie-break (popularity).

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
};

/// Longest query we look at (characters); longer input is cut, not rejected.
pub const MAX_QUERY_CHARS: usize = 200;
/// Query tokens beyond this many are ignored.
pub const MAX_QUERY_TOKENS: usize = 8;

/// Documents have at most `1 << FIELD_BITS` searchable fields.
const FIELD_BITS: u32 = 2;
const MAX_FIELDS: usize = 1 << FIELD_BITS;

const COST_EXACT: u32 = 0;
const COST_PREFIX: u32 = 1;
const COST_PER_TYPO: u32 = 2;

pub struct SearchIndex {
    /// Sorted, unique tokens.
    vocab: Vec<Box<str>>,
    /// For each vocabulary token, the sorted (document, field) pairs that contain it, packed as
    /// `document << FIELD_BITS | field`.
    postings: Vec<Vec<u32>>,
    /// For each document and field, its number of distinct tokens (saturating at 255).
    field_tokens: Vec<u8>,
    /// (hash of a deletion variant, vocabulary token), sorted by hash.
    deletes: Vec<(u64, u32)>,
    documents: usize,
}

/// Per-thread scoring arrays, indexed by document (and field) and reused across queries: a
/// query touches thousands of documents for a short prefix, and dense arrays with generation
/// stamps cost far less than a fresh hash map each time (see docs/BENCHMARKS.md).
#[derive(Default)]
struct Scratch {
    query_stamp: Vec<u32>,
    matched: Vec<u32>,
    cost: Vec<u32>,
    token_stamp: Vec<u32>,
    token_cost: Vec<u32>,
    /// Per (document, field): query tokens matched in that field, valid when its stamp is this
    /// query's; and the last query token counted, so each counts once per field.
    field_stamp: Vec<u32>,
    field_hits: Vec<u8>,
    field_token_stamp: Vec<u32>,
    touched: Vec<u32>,
    query_generation: u32,
    token_generation: u32,
}

/// A scored document: query tokens matched, summed cost, whether a field is matched whole.
#[derive(Clone, Copy)]
struct Candidate {
    doc: u32,
    matched: u32,
    cost: u32,
    whole_field: bool,
}

impl Scratch {
    fn begin_query(&mut self, documents: usize) {
        if self.query_stamp.len() < documents {
            for v in [
                &mut self.query_stamp,
                &mut self.matched,
                &mut self.cost,
                &mut self.token_stamp,
                &mut self.token_cost,
            ] {
                v.resize(documents, 0);
            }
            for v in [&mut self.field_stamp, &mut self.field_token_stamp] {
                v.resize(documents * MAX_FIELDS, 0);
            }
            self.field_hits.resize(documents * MAX_FIELDS, 0);
        }
        if self.query_generation == u32::MAX
            || self.token_generation > u32::MAX - MAX_QUERY_TOKENS as u32
        {
            for v in [
                &mut self.query_stamp,
                &mut self.token_stamp,
                &mut self.field_stamp,
                &mut self.field_token_stamp,
            ] {
                v.fill(0);
            }
            self.query_generation = 0;
            self.token_generation = 0;
        }
        self.query_generation += 1;
        self.touched.clear();
    }

    fn begin_token(&mut self) {
        self.token_generation += 1;
    }

    /// A packed (document, field) posting matches the current query token at `cost`.
    fn offer(&mut self, posting: u32, cost: u32) {
        let d = (posting >> FIELD_BITS) as usize;
        let f = posting as usize & (MAX_FIELDS - 1);
        if self.query_stamp[d] != self.query_generation {
            self.query_stamp[d] = self.query_generation;
            self.matched[d] = 0;
            self.cost[d] = 0;
            self.touched.push(d as u32);
        }
        if self.token_stamp[d] != self.token_generation {
            self.token_stamp[d] = self.token_generation;
            self.token_cost[d] = cost;
            self.matched[d] += 1;
            self.cost[d] += cost;
        } else if cost < self.token_cost[d] {
            self.cost[d] -= self.token_cost[d] - cost;
            self.token_cost[d] = cost;
        }
        let df = d * MAX_FIELDS + f;
        if self.field_stamp[df] != self.query_generation {
            self.field_stamp[df] = self.query_generation;
            self.field_hits[df] = 0;
        }
        if self.field_token_stamp[df] != self.token_generation {
            self.field_token_stamp[df] = self.token_generation;
            self.field_hits[df] = self.field_hits[df].saturating_add(1);
        }
    }

    fn results(&self, field_tokens: &[u8]) -> Vec<Candidate> {
        self.touched
            .iter()
            .map(|&doc| {
                let d = doc as usize;
                let whole_field = (0..MAX_FIELDS).any(|f| {
                    let df = d * MAX_FIELDS + f;
                    self.field_stamp[df] == self.query_generation
                        && self.field_hits[df] >= field_tokens[df].max(1)
                });
                Candidate {
                    doc,
                    matched: self.matched[d],
                    cost: self.cost[d],
                    whole_field,
                }
            })
            .collect()
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Lowercase ASCII tokens of `text`.
pub fn tokenize(text: &str) -> Vec<String> {
    let folded = deunicode::deunicode(text)
        .to_ascii_lowercase()
        .replace(['\'', '`'], "");
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
        let mut field_tokens = Vec::new();
        let mut count = 0;
        for (doc, fields) in documents.into_iter().enumerate() {
            count = doc + 1;
            field_tokens.resize(count * MAX_FIELDS, 0u8);
            for (field, text) in fields.into_iter().enumerate().take(MAX_FIELDS) {
                let posting = (doc as u32) << FIELD_BITS | field as u32;
                let mut distinct = tokenize(text);
                distinct.sort_unstable();
                distinct.dedup();
                field_tokens[doc * MAX_FIELDS + field] = distinct.len().min(255) as u8;
                for token in distinct {
                    postings_by_token.entry(token).or_default().push(posting);
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
        Self {
            vocab,
            postings,
            deletes,
            field_tokens,
            documents: count,
        }
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
                let cost = if candidate.len() == token.len() {
                    COST_EXACT
                } else {
                    COST_PREFIX
                };
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

        let candidates = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.begin_query(self.documents);
            for (i, token) in tokens.iter().enumerate() {
                scratch.begin_token();
                for (vocab_index, cost) in self.matches(token, typing && i == last) {
                    for &posting in &self.postings[vocab_index as usize] {
                        scratch.offer(posting, cost);
                    }
                }
            }
            scratch.results(&self.field_tokens)
        });
        let all = tokens.len() as u32;
        let mut hits: Vec<(Candidate, u32)> = candidates
            .into_iter()
            .filter(|c| keep(c.doc))
            .map(|c| (c, rank(c.doc)))
            .collect();
        if hits.iter().any(|(c, _)| c.matched == all) {
            hits.retain(|(c, _)| c.matched == all);
        }
        let order = |(a, a_rank): &(Candidate, u32), (b, b_rank): &(Candidate, u32)| {
            b.matched
                .cmp(&a.matched)
                .then(a.cost.cmp(&b.cost))
                .then(b.whole_field.cmp(&a.whole_field))
                .then(b_rank.cmp(a_rank))
                .then(a.doc.cmp(&b.doc))
        };
        if hits.len() > limit {
            hits.select_nth_unstable_by(limit - 1, order);
            hits.truncate(limit);
        }
        hits.sort_unstable_by(order);
        hits.into_iter().map(|(c, _)| c.doc).collect()
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
        assert_eq!(
            tokenize("Beyoncé – Don't STOP!"),
            vec!["beyonce", "dont", "stop"]
        );
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
        let popular_second = idx.search(
            "beyonce",
            10,
            |_| true,
            |doc| if doc == 4 { 90 } else { 10 },
        );
        assert_eq!(popular_second, vec![4, 0]);
        assert_eq!(idx.search("beyonce", 10, |doc| doc != 4, |_| 0), vec![0]);
        assert_eq!(idx.search("beyonce", 1, |_| true, |_| 0), vec![0]);
    }

    #[test]
    fn a_field_matched_whole_outranks_a_passing_mention() {
        let idx = SearchIndex::build([
            ["Perfect Duet (with Beyoncé)", "Ed Sheeran"],
            ["Formation", "Beyoncé"],
        ]);
        // The duet is more popular, but "beyonce" is all of the second track's artist field.
        assert_eq!(
            idx.search("beyonse", 10, |_| true, |doc| if doc == 0 { 99 } else { 1 }),
            vec![1, 0]
        );
        assert_eq!(idx.search("perfect duet", 10, |_| true, |_| 0), vec![0]);
    }

    #[test]
    fn empty_and_junk_queries_return_nothing() {
        let idx = index();
        assert!(search(&idx, "").is_empty());
        assert!(search(&idx, "!!! ---").is_empty());
        assert!(search(&idx, &"x".repeat(10_000)).is_empty());
    }
}
