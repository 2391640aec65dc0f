//! The statistics experimenters read (DESIGN §5), as pure functions: no I/O, no actors.
//! Every figure is checked against SciPy/statsmodels reference values in the test suite
//! (`tests/reference/stats.json`, made by `scripts/stats-reference.sh`).

pub mod adjust;
pub mod group_sequential;
pub mod means;
pub mod posterior;
pub mod proportions;
pub mod quadrature;
pub mod sequential;
pub mod special;

/// At most this many variants in one comparison.
pub const MAX_VARIANTS: usize = 20;

/// Input the statistics cannot be computed from, with the reason in words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    TooFewVariants(String),
    #[error("{0}")]
    UnknownControl(String),
    #[error("{0}")]
    DuplicateVariant(String),
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Counts(String),
    #[error("{0}")]
    Weights(String),
    #[error("{0}")]
    NoVariance(String),
    #[error("{0}")]
    Overflow(String),
}

/// Checks names (2 to `MAX_VARIANTS` variants, unique, non-empty, the control among them) and
/// returns the control's index.
fn validate_arms<'a>(
    control: &str,
    names: impl ExactSizeIterator<Item = &'a str> + Clone,
) -> Result<usize, InputError> {
    let count = names.len();
    if !(2..=MAX_VARIANTS).contains(&count) {
        return Err(InputError::TooFewVariants(format!(
            "a comparison needs between 2 and {MAX_VARIANTS} variants (the control included); got {count}"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for name in names.clone() {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(InputError::Name(
                "variant names must be 1 to 100 characters".into(),
            ));
        }
        crate::domain::text::check_line("variant name", name).map_err(InputError::Name)?;
        if !seen.insert(name) {
            return Err(InputError::DuplicateVariant(format!(
                "two variants are named {name:?}; names must be unique"
            )));
        }
    }
    names
        .clone()
        .position(|name| name == control)
        .ok_or_else(|| {
            InputError::UnknownControl(format!(
                "the control {control:?} is not one of the variants' names"
            ))
        })
}
