//! The shipped model artifacts (`models/`): the manifest that describes them, verification that
//! the files on disk are the ones it describes, and ONNX Runtime sessions for them.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`) from the library that
//! `scripts/setup.sh` installs, or from `ORT_DYLIB_PATH`. One ONNX Runtime environment exists per
//! process; [`environment`] creates it on first use.

mod manifest;
mod onnx_graph;
mod perceptron;

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use ort::{
    environment::Environment,
    session::Session,
    value::{TensorElementType, ValueType},
};

pub use manifest::{CalibrationSpec, Dim, Manifest, ModelSpec, TensorSpec};
pub use perceptron::Perceptron;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model artifact {path} is missing (run scripts/models.sh to rebuild the models)")]
    MissingFile { path: PathBuf },
    #[error("{file} does not match models/manifest.json: sha256 is {actual}, the manifest says {expected}")]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("models/manifest.json: {0}")]
    Manifest(String),
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("{model}: the model's {what} differ from the manifest: {detail}")]
    Mismatch {
        model: String,
        what: &'static str,
        detail: String,
    },
}

/// Where `scripts/setup.sh` puts ONNX Runtime, relative to the project root.
pub const DEFAULT_ORT_DYLIB: &str = ".local/onnxruntime/libonnxruntime.so";

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process's ONNX Runtime environment, loading the library from `dylib` the first time.
pub fn environment(dylib: &Path) -> Result<&'static Environment, ModelError> {
    ENVIRONMENT
        .get_or_init(|| {
            if !dylib.exists() {
                return Err(format!(
                    "the ONNX Runtime library {} does not exist; run scripts/setup.sh or set ORT_DYLIB_PATH",
                    dylib.display()
                ));
            }
            ort::init_from(dylib)
                .map_err(|e| format!("loading {}: {e}", dylib.display()))?
                .with_name("chorus")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ModelError::Runtime(e.clone()))
}

/// Where and how a session runs.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    pub intra_threads: usize,
    /// Run on CUDA (registration failure is an error; callers fall back explicitly).
    pub cuda: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            intra_threads: 1,
            cuda: false,
        }
    }
}

/// Whether this build can use the CUDA execution provider (the `cuda` cargo feature).
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

/// Opens one model and checks its inputs and outputs against the manifest.
pub fn open_session(
    env: &Environment,
    dir: &Path,
    name: &str,
    spec: &ModelSpec,
    options: SessionOptions,
) -> Result<Session, ModelError> {
    let path = dir.join(&spec.file);
    let session = Session::builder(env)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            b.with_intra_threads(options.intra_threads)
                .map_err(|e| e.to_string())
        })
        .and_then(|b| with_provider(b, options.cuda))
        .and_then(|mut b| b.commit_from_file(&path).map_err(|e| e.to_string()))
        .map_err(|e| ModelError::Runtime(format!("opening {}: {e}", path.display())))?;
    let describe = |outlets: &[ort::value::Outlet]| -> Vec<TensorSpec> {
        outlets
            .iter()
            .map(|o| match o.dtype() {
                ValueType::Tensor { ty, shape, .. } => TensorSpec {
                    name: o.name().to_string(),
                    dtype: numpy_dtype(*ty),
                    shape: shape
                        .iter()
                        .map(|&d| if d < 0 { Dim::Dynamic } else { Dim::Fixed(d) })
                        .collect(),
                },
                other => TensorSpec {
                    name: o.name().to_string(),
                    dtype: format!("{other:?}"),
                    shape: Vec::new(),
                },
            })
            .collect()
    };
    for (what, actual, expected) in [
        ("inputs", describe(session.inputs()), &spec.inputs),
        ("outputs", describe(session.outputs()), &spec.outputs),
    ] {
        if !manifest::same_signature(&actual, expected) {
            return Err(ModelError::Mismatch {
                model: name.to_string(),
                what,
                detail: format!("model has {actual:?}, manifest says {expected:?}"),
            });
        }
    }
    Ok(session)
}

#[cfg(feature = "cuda")]
fn with_provider(
    builder: ort::session::builder::SessionBuilder,
    cuda: bool,
) -> Result<ort::session::builder::SessionBuilder, String> {
    if !cuda {
        return Ok(builder);
    }
    builder
        .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
        .map_err(|e| format!("the CUDA execution provider is not usable: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn with_provider(
    builder: ort::session::builder::SessionBuilder,
    cuda: bool,
) -> Result<ort::session::builder::SessionBuilder, String> {
    if cuda {
        return Err("this build has no CUDA support (build with `--features cuda`)".into());
    }
    Ok(builder)
}

/// The manifest uses NumPy's dtype names (it is written from Python).
fn numpy_dtype(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => "float32".into(),
        TensorElementType::Float64 => "float64".into(),
        TensorElementType::Int64 => "int64".into(),
        TensorElementType::Int32 => "int32".into(),
        TensorElementType::Bool => "bool".into(),
        other => other.to_string(),
    }
}
