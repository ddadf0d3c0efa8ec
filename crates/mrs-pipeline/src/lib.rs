//! The MRS pipeline: a lake of Parquet tables, versioned SQL migrations that declare the logs,
//! and a runner that executes the SQL stage scripts in order.
//!
//! - [`lake`]: where the lake lives, input registration and normalisation;
//! - [`session`]: a `SessionContext` with every MRS function registered;
//! - [`script`]: the embedded `sql/` scripts and a statement runner that names the failing
//!   script and statement;
//! - [`migrations`]: checksummed, applied-once migrations;
//! - [`lease`]: one writing run per lake at a time;
//! - [`runner`]: `mrs run`;
//! - [`feeds`]: the protection feeds, `protected_sales` rewritten by day;
//! - [`decisions`]: analyst decisions (`mrs decide`);
//! - [`row_key`]: `mrs_row_key`, the hash the input checks group sales cells by.

pub mod checkpoint;
pub mod decisions;
pub mod feeds;
pub mod lake;
pub mod lease;
pub mod migrations;
mod query;
pub mod row_key;
pub mod runner;
pub mod sales_files;
pub mod script;
pub mod session;

pub use lake::Lake;
pub use runner::{Backfill, RunOptions, RunSummary, run};
pub use session::{open_session, register_all_functions};
