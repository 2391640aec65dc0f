//! The shipped models: the manifest matches the files, every model loads in ONNX Runtime with the
//! signature the manifest declares, and the outputs and metrics recorded at training time are
//! reproduced through ONNX Runtime on the committed sample.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use chorus::models::{
    environment, open_session, Manifest, ModelError, Perceptron, SessionOptions, DEFAULT_ORT_DYLIB,
};
use ort::{environment::Environment, session::Session, value::Tensor};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn models_dir() -> PathBuf {
    root().join("models")
}

fn ort_env() -> &'static Environment {
    let dylib = std::env::var("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(DEFAULT_ORT_DYLIB));
    environment(&dylib).unwrap_or_else(|e| panic!("{e} (scripts/setup.sh installs it)"))
}

fn session(name: &str) -> Session {
    let manifest = Manifest::load(&models_dir()).unwrap();
    open_session(
        ort_env(),
        &models_dir(),
        name,
        &manifest.models[name],
        SessionOptions::default(),
    )
    .unwrap()
}

fn sample() -> Value {
    serde_json::from_str(&std::fs::read_to_string(models_dir().join("sample.json")).unwrap())
        .unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            other => out.push(other.as_f64().expect("a number") as f32),
        }
    }
    walk(v, &mut out);
    out
}

fn run(
    session: &mut Session,
    inputs: Vec<(&'static str, Vec<usize>, Vec<f32>)>,
    output: &str,
) -> (Vec<i64>, Vec<f32>) {
    let values: Vec<(String, ort::session::SessionInputValue<'_>)> = inputs
        .into_iter()
        .map(|(name, shape, data)| {
            (
                name.to_string(),
                Tensor::from_array((shape, data)).unwrap().into(),
            )
        })
        .collect();
    let outputs = session.run(values).unwrap();
    let (shape, data) = outputs[output].try_extract_tensor::<f32>().unwrap();
    (shape.to_vec(), data.to_vec())
}

fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance * (1.0 + e.abs()),
            "{what}[{i}]: {a} vs recorded {e}"
        );
    }
}

#[test]
fn manifest_matches_the_shipped_files() {
    let manifest = Manifest::load(&models_dir()).unwrap();
    manifest.verify_files(&models_dir()).unwrap();
    assert_eq!(manifest.embedding_dim, 64);
    assert_eq!(
        manifest.split["heldout_playlists"]
            .as_array()
            .unwrap()
            .len(),
        94
    );
    let (ids, vectors) = manifest.load_items(&models_dir()).unwrap();
    assert_eq!(ids.len(), 28_356);
    assert_eq!(vectors.len(), ids.len() * 64);
    assert!(vectors.iter().all(|v| v.is_finite()));
    let neighbours = chorus::inference::neighbours::load(&manifest, &models_dir()).unwrap();
    assert_eq!(neighbours.len(), ids.len());
    assert_eq!(neighbours.nnz(), manifest.items.neighbours.nnz);
    for h in 0..ids.len() as u32 {
        let row: Vec<(u32, f32)> = neighbours.row(h).collect();
        assert!(row.len() <= manifest.items.neighbours.per_item);
        assert!(row.iter().all(|&(j, w)| j != h && w > 0.0 && w.is_finite()));
        assert!(row.windows(2).all(|p| p[0].1 >= p[1].1), "strongest first");
    }
    assert_eq!(
        manifest.models["hybrid"].feature_order,
        chorus::inference::features::HYBRID_FEATURES
    );
    for (name, spec) in &manifest.models {
        assert!(!spec.training_command.is_empty(), "{name}");
        assert!(spec.metrics.is_object(), "{name} records its metrics");
        assert_eq!(spec.id_mapping, "item_ids.txt");
    }
}

#[test]
fn every_model_loads_with_its_declared_signature() {
    for name in ["ncf", "content", "hybrid"] {
        session(name);
    }
}

#[test]
fn content_model_reproduces_recorded_outputs_and_metrics() {
    let sample = sample();
    let mut content = session("content");
    let features = floats(&sample["content"]["features"]);
    let rows = features.len() / 14;
    let batch = vec![("features", vec![rows, 14], features.clone())];
    let (shape, embedding) = run(&mut content, batch.clone(), "embedding");
    assert_eq!(shape, vec![rows as i64, 64]);
    assert_close(
        &embedding,
        &floats(&sample["content"]["embedding"]),
        1e-4,
        "embedding",
    );
    let (_, genres) = run(&mut content, batch.clone(), "genre_probabilities");
    assert_close(
        &genres,
        &floats(&sample["content"]["genre_probabilities"]),
        1e-4,
        "genre_probabilities",
    );
    let (_, moods) = run(&mut content, batch, "mood_probabilities");
    assert_close(
        &moods,
        &floats(&sample["content"]["mood_probabilities"]),
        1e-4,
        "mood_probabilities",
    );
    // A batch of one gives the same row as the batch of eight.
    let (_, single) = run(
        &mut content,
        vec![("features", vec![1, 14], features[14..28].to_vec())],
        "embedding",
    );
    assert_close(&single, &embedding[64..128], 1e-5, "batch of one");

    // Genre and mood accuracy on 1,000 held-out tracks, as recorded by the training run.
    let classification = &sample["classification"];
    let features = floats(&classification["features"]);
    let n = features.len() / 14;
    let (_, logits) = run(
        &mut content,
        vec![("features", vec![n, 14], features.clone())],
        "genre_probabilities",
    );
    let (_, mood_probs) = run(
        &mut content,
        vec![("features", vec![n, 14], features)],
        "mood_probabilities",
    );
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u64
    };
    let accuracy = |scores: &[f32], width: usize, labels: &Value| {
        let labels = labels.as_array().unwrap();
        let hits = scores
            .chunks(width)
            .zip(labels)
            .filter(|(row, label)| argmax(row) == label.as_u64().unwrap())
            .count();
        hits as f64 / labels.len() as f64
    };
    let genre_accuracy = accuracy(&logits, 6, &classification["genres"]);
    let mood_accuracy = accuracy(&mood_probs, 5, &classification["moods"]);
    assert!((genre_accuracy - classification["genre_accuracy"].as_f64().unwrap()).abs() <= 0.002);
    assert!((mood_accuracy - classification["mood_accuracy"].as_f64().unwrap()).abs() <= 0.002);
}

#[test]
fn ncf_and_hybrid_reproduce_recorded_scores() {
    let manifest = Manifest::load(&models_dir()).unwrap();
    let (ids, vectors) = manifest.load_items(&models_dir()).unwrap();
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let vector = |id: &Value| {
        let row = index[id.as_str().unwrap()];
        &vectors[row * 64..(row + 1) * 64]
    };
    let mut ncf = session("ncf");
    let mut hybrid = session("hybrid");
    for playlist in sample()["playlists"].as_array().unwrap() {
        let seeds = playlist["seed_track_ids"].as_array().unwrap();
        let mut user = vec![0f32; 64];
        for seed in seeds {
            for (u, v) in user.iter_mut().zip(vector(seed)) {
                *u += v / seeds.len() as f32;
            }
        }
        let candidates = playlist["candidate_track_ids"].as_array().unwrap();
        let items: Vec<f32> = candidates.iter().flat_map(|c| vector(c).to_vec()).collect();
        let (shape, scores) = run(
            &mut ncf,
            vec![
                ("user", vec![1, 64], user),
                ("items", vec![1, candidates.len(), 64], items),
            ],
            "score",
        );
        assert_eq!(shape, vec![1, candidates.len() as i64]);
        assert_close(&scores, &floats(&playlist["ncf"]), 1e-3, "ncf score");

        let features = floats(&playlist["features"]);
        let width = manifest.models["hybrid"].feature_order.len();
        let (_, ranked) = run(
            &mut hybrid,
            vec![("features", vec![1, features.len() / width, width], features)],
            "score",
        );
        assert_close(&ranked, &floats(&playlist["hybrid"]), 1e-4, "hybrid score");
    }
}

/// The server runs `hybrid.onnx` in process (`Perceptron`); it must score as ONNX Runtime and
/// the training pipeline do: on the recorded sample, and on rows far from the training data
/// (every hidden unit on both sides of its ReLU).
#[test]
fn the_in_process_hybrid_ranker_scores_as_onnx_runtime() {
    let manifest = Manifest::load(&models_dir()).unwrap();
    let perceptron = Perceptron::read(&models_dir().join(&manifest.models["hybrid"].file))
        .expect("hybrid.onnx is a one-hidden-layer perceptron");
    let width = manifest.models["hybrid"].feature_order.len();
    assert_eq!(perceptron.inputs(), width);
    let mut hybrid = session("hybrid");
    for playlist in sample()["playlists"].as_array().unwrap() {
        let features = floats(&playlist["features"]);
        assert_close(
            &perceptron.score(&features),
            &floats(&playlist["hybrid"]),
            1e-4,
            "in-process hybrid score",
        );
    }
    // A fixed pseudo-random spread of rows, values in [-3, 3].
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let rows: Vec<f32> = (0..width * 500)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 6.0 - 3.0
        })
        .collect();
    let (_, expected) = run(
        &mut hybrid,
        vec![("features", vec![1, 500, width], rows.clone())],
        "score",
    );
    assert_close(
        &perceptron.score(&rows),
        &expected,
        1e-5,
        "hybrid on random rows",
    );
}

#[test]
fn corrupt_or_missing_artifacts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(models_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let manifest = Manifest::load(dir.path()).unwrap();
    manifest.verify_files(dir.path()).unwrap();

    let hybrid = dir.path().join("hybrid.onnx");
    let mut bytes = std::fs::read(&hybrid).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&hybrid, bytes).unwrap();
    match manifest.verify_files(dir.path()) {
        Err(ModelError::ChecksumMismatch { file, .. }) => assert_eq!(file, "hybrid.onnx"),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }

    std::fs::remove_file(dir.path().join("content.onnx")).unwrap();
    std::fs::copy(models_dir().join("hybrid.onnx"), &hybrid).unwrap();
    let err = manifest.verify_files(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("content.onnx"), "{err}");
}
