//! Sessions with every MRS function, the lake's tables and the hydrated views registered.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::lake::Lake;
use crate::{migrations, script};

/// Registers the scalar, aggregate and window functions of every MRS crate.
pub fn register_all_functions(registry: &mut dyn FunctionRegistry) -> Result<()> {
    mrs_core::register_all(registry)?;
    mrs_detect::register_all(registry)?;
    mrs_cluster::register_all(registry)?;
    mrs_attribute::register_all(registry)?;
    registry.register_udf(Arc::new(
        datafusion::logical_expr::ScalarUDF::new_from_impl(crate::row_key::RowKeyFunc::new()),
    ))?;
    Ok(())
}

/// The session configuration MRS relies on: UTC session time zone (so `TIMESTAMP WITH TIME
/// ZONE` columns are UTC), plain Utf8 strings, and the information schema for `SHOW FUNCTIONS`.
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(true);
    let options = config.options_mut();
    options.execution.time_zone = Some("UTC".to_string());
    options.sql_parser.map_string_types_to_utf8view = false;
    options.execution.parquet.schema_force_view_types = false;
    config
}

/// A bare context with MRS functions and a runtime that never caches file listings, so a
/// long-lived session sees files that other processes appended (DESIGN §6).
pub fn new_context(config: SessionConfig) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
        .build_arc()?;
    let mut ctx = SessionContext::new_with_config_rt(config, runtime);
    register_all_functions(&mut ctx)?;
    mrs_detect::register_table_functions(&ctx);
    Ok(ctx)
}

/// Registers the lake's inputs, logs and hydrated views on a context (the shell's set-up).
/// Pending migrations are not applied here: only `mrs run` writes.
pub async fn register_lake(
    ctx: &SessionContext,
    lake: &Lake,
    as_of_micros: Option<i64>,
) -> Result<()> {
    lake.register_object_store(ctx)?;
    lake.register_inputs(ctx, as_of_micros).await?;
    migrations::register_tables(ctx, lake).await?;
    script::run_views(ctx, lake).await?;
    Ok(())
}

/// A context over a lake, ready for queries.
pub async fn open_session(lake: &Lake, as_of_micros: Option<i64>) -> Result<Arc<SessionContext>> {
    let ctx = new_context(session_config())?;
    register_lake(&ctx, lake, as_of_micros).await?;
    Ok(Arc::new(ctx))
}
