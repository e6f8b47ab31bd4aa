//! Model families.

pub mod ccl;
pub mod classifier;
pub mod xkd;
