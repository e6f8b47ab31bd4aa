//! Model families.

pub mod classifier;
pub mod xkd;
