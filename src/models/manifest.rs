//! `models/manifest.json`, written by `models/train` (see `scripts/models.sh`).

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ModelError;

/// A tensor dimension: fixed, or named and dynamic (`"batch"`, `"candidates"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Named(String),
    #[serde(skip)]
    Dynamic,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<Dim>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    pub file: String,
    pub sha256: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub id_mapping: String,
    pub training_command: String,
    #[serde(default)]
    pub feature_order: Vec<String>,
    #[serde(default)]
    pub genres: Vec<String>,
    #[serde(default)]
    pub moods: Vec<String>,
    pub metrics: serde_json::Value,
    /// The hybrid ranker's logit as a probability (`chorus eval-groups --write-calibration`).
    #[serde(default)]
    pub calibration: Option<CalibrationSpec>,
}

/// `p = σ(slope · logit + intercept)`, and where it was fitted.
#[derive(Debug, Clone, Deserialize)]
pub struct CalibrationSpec {
    pub method: String,
    pub slope: f32,
    pub intercept: f32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileRef {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Items {
    pub count: usize,
    pub ids: FileRef,
    pub vectors: FileRef,
    /// Item-item neighbours in shipped item order (see `inference::neighbours`).
    pub neighbours: NeighboursRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NeighboursRef {
    pub file: String,
    pub sha256: String,
    /// Stored neighbour weights in all.
    pub nnz: usize,
    /// At most this many per item.
    pub per_item: usize,
    /// Of a ranking's candidates, at most this share comes from the neighbours.
    pub candidate_share: f32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub embedding_dim: usize,
    pub items: Items,
    pub sample: FileRef,
    pub split: serde_json::Value,
    pub models: BTreeMap<String, ModelSpec>,
    /// Each bandit arm's offline quality per context (`chorus eval-priors --write`), the
    /// bandits' warm start.
    #[serde(default)]
    pub bandit_prior: Option<crate::bandit::prior::OfflineQuality>,
}

/// The three models the server needs.
pub const REQUIRED_MODELS: [&str; 3] = ["ncf", "content", "hybrid"];

impl Manifest {
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|_| ModelError::MissingFile { path: path.clone() })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| ModelError::Manifest(e.to_string()))?;
        if manifest.version != 1 {
            return Err(ModelError::Manifest(format!(
                "unsupported version {}",
                manifest.version
            )));
        }
        for name in REQUIRED_MODELS {
            if !manifest.models.contains_key(name) {
                return Err(ModelError::Manifest(format!(
                    "no entry for the {name} model"
                )));
            }
        }
        Ok(manifest)
    }

    /// Every file the manifest names exists and has the recorded sha256.
    pub fn verify_files(&self, dir: &Path) -> Result<(), ModelError> {
        let mut files: Vec<(&str, &str)> = vec![
            (&self.items.ids.file, &self.items.ids.sha256),
            (&self.items.vectors.file, &self.items.vectors.sha256),
            (&self.items.neighbours.file, &self.items.neighbours.sha256),
            (&self.sample.file, &self.sample.sha256),
        ];
        files.extend(
            self.models
                .values()
                .map(|m| (m.file.as_str(), m.sha256.as_str())),
        );
        for (file, expected) in files {
            let actual = sha256_file(&dir.join(file))?;
            if actual != expected {
                return Err(ModelError::ChecksumMismatch {
                    file: file.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        Ok(())
    }

    /// Track ids in item-vector order, and the row-major `[count, embedding_dim]` vectors.
    pub fn load_items(&self, dir: &Path) -> Result<(Vec<String>, Vec<f32>), ModelError> {
        let ids_path = dir.join(&self.items.ids.file);
        let ids: Vec<String> = std::fs::read_to_string(&ids_path)
            .map_err(|_| ModelError::MissingFile { path: ids_path })?
            .lines()
            .map(str::to_string)
            .collect();
        let vectors_path = dir.join(&self.items.vectors.file);
        let bytes = std::fs::read(&vectors_path)
            .map_err(|_| ModelError::MissingFile { path: vectors_path })?;
        let expected = self.items.count * self.embedding_dim * 4;
        if ids.len() != self.items.count || bytes.len() != expected {
            return Err(ModelError::Manifest(format!(
                "expected {} ids and {expected} bytes of vectors, found {} ids and {} bytes",
                self.items.count,
                ids.len(),
                bytes.len()
            )));
        }
        let vectors = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((ids, vectors))
    }
}

pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let missing = || ModelError::MissingFile {
        path: PathBuf::from(path),
    };
    let mut file = std::fs::File::open(path).map_err(|_| missing())?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(|_| missing())?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Names and dtypes equal, ranks equal, and every fixed dimension equal (named dimensions in the
/// manifest are dynamic in the model).
pub fn same_signature(actual: &[TensorSpec], expected: &[TensorSpec]) -> bool {
    actual.len() == expected.len()
        && actual.iter().zip(expected).all(|(a, e)| {
            a.name == e.name
                && a.dtype == e.dtype
                && a.shape.len() == e.shape.len()
                && a.shape.iter().zip(&e.shape).all(|(ad, ed)| match (ad, ed) {
                    (Dim::Dynamic, Dim::Named(_)) => true,
                    (Dim::Fixed(x), Dim::Fixed(y)) => x == y,
                    _ => false,
                })
        })
}
