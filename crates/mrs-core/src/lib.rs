//! MRS core: the contracts every other crate relies on.
//!
//! - [`taxonomy`]: detection types (causes), impact vectors and confidence tiers with their exact
//!   spellings (DESIGN §5);
//! - [`identity`]: deterministic report and event ids (DESIGN §3);
//! - [`schema`]: the input tables and their canonical Arrow schemas (DESIGN §2);
//! - [`functions`]: the identity SQL functions (`mrs_report_id`, `mrs_event_id`, `mrs_hash`);
//! - [`error`]: the domain error, converted to `DataFusionError` at the edge.

pub mod error;
pub mod functions;
pub mod identity;
pub mod schema;
pub mod special;
pub mod taxonomy;

pub use error::{MrsError, MrsResult};
pub use functions::register_all;
