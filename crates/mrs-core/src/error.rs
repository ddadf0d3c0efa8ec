//! The domain error of MRS crates, converted to DataFusion's own variants at the edge.

use datafusion::error::DataFusionError;

pub type MrsResult<T, E = MrsError> = Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MrsError {
    /// The user asked for something that cannot be done (bad argument, bad option).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The data does not satisfy the input contract.
    #[error("bad data: {0}")]
    BadData(String),
    /// A migration or pipeline script problem.
    #[error("script {script}: {message}")]
    Script { script: String, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl From<MrsError> for DataFusionError {
    fn from(err: MrsError) -> Self {
        match err {
            MrsError::InvalidArgument(msg) => DataFusionError::Plan(msg),
            MrsError::BadData(msg) => DataFusionError::Execution(msg),
            MrsError::Script { script, message } => {
                DataFusionError::Execution(format!("script {script}: {message}"))
            }
            MrsError::Io(e) => DataFusionError::IoError(e),
            MrsError::Json(e) => DataFusionError::External(Box::new(e)),
            MrsError::DataFusion(e) => e,
        }
    }
}
