//! `mrs_core::special`, from its source file.

#[path = "../../../crates/mrs-core/src/special.rs"]
pub mod special;
