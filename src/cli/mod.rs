//! Command-line argument groups and handlers that would crowd main.rs.

pub mod tasks;
