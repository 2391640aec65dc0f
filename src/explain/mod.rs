//! Explanations of why a track is recommended: the grounded facts (`facts`, collected by
//! `gather`), their template rendering (`template`), the prompt for a language model (`prompt`),
//! its client (`llm`), the check its answers must pass (`check`), and the ExplainerActor that
//! chooses between them within a deadline (`actor`).

pub mod actor;
pub mod check;
pub mod facts;
pub mod gather;
pub mod llm;
pub mod prompt;
pub mod template;
