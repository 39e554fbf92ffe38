//! What a run leaves for people and CI to read.

pub mod summary;
