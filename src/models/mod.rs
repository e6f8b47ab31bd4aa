//! Model families.

pub mod xkd;
