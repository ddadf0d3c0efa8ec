//! The sales input as one Parquet scan that knows which file each row came from, and the lake's
//! bucket grid.
//!
//! DataFusion 55 cannot expose the source file of a row (apache/datafusion#6051), but its file
//! scans attach per-file partition values; [`SalesFiles`] gives every file under `input/sales`
//! (any depth) its path relative to that folder as the partition column `source_file`. That path
//! is the arrival order of deliveries: when two files hold different values for one
//! `(store_id, sku, ts)`, the file whose path sorts last is the correction (README "The lake").
//! Names are used rather than object modification times because a copy, a restore or a clean
//! clone rewrites those, and listing order is not defined by object stores at all.
//!
//! Files are listed at every scan, so a long-lived session sees new deliveries (DESIGN §6), and
//! a filter on `source_file` alone (`source_file IN (…)`: the new files of an incremental run)
//! is evaluated on the names before any file is opened; the
//! schema is read from every file's footer when the table is registered, and a file that is not
//! readable Parquet (truncated, corrupt, not Parquet at all) or whose columns clash with the
//! others fails the run with the file named.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, DictionaryArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Int64Type, Schema, SchemaRef, UInt16Type,
};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::object_store::ObjectMeta;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use crate::lake::Lake;

/// Name of the column holding a row's file, relative to `input/sales/`.
pub const SOURCE_FILE: &str = "source_file";

/// Type of [`SOURCE_FILE`]: dictionary-encoded, so a file's rows share one copy of its name.
fn source_file_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
}

/// Every Parquet file under a lake folder, with the `source_file` column.
#[derive(Debug)]
pub struct SalesFiles {
    lake: Lake,
    folder: String,
    format: ParquetFormat,
    file_schema: SchemaRef,
    schema: SchemaRef,
}

impl SalesFiles {
    /// Reads the schema of every file under `folder` (a lake-relative path).
    pub async fn try_new(ctx: &SessionContext, lake: &Lake, folder: &str) -> Result<Self> {
        let state = ctx.state();
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let objects = list(lake, folder).await?;
        let store = lake.store();
        let schemas: Vec<(String, SchemaRef)> = futures::stream::iter(objects)
            .map(|o| {
                let (format, store, state) = (&format, &store, &state);
                async move {
                    let url = format!("{}/{}", lake.url(), relative(lake, "", &o.location));
                    format
                        .infer_schema(state, store, std::slice::from_ref(&o))
                        .await
                        .map(|s| (url.clone(), s))
                        .map_err(|e| {
                            DataFusionError::Execution(format!(
                                "input file '{url}' is not readable Parquet: {e}"
                            ))
                        })
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        let mut merged = Schema::empty();
        for (url, schema) in &schemas {
            merged = Schema::try_merge([merged, schema.as_ref().clone()]).map_err(|e| {
                DataFusionError::Execution(format!(
                    "input file '{url}' does not match the other files of {}: {e}",
                    lake.folder_url(folder)
                ))
            })?;
        }
        let file_schema = Arc::new(merged);
        let mut fields: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        if file_schema.field_with_name(SOURCE_FILE).is_ok() {
            return Err(DataFusionError::Plan(format!(
                "the files of {} have a column '{SOURCE_FILE}', a name MRS reserves for the file a row comes from",
                lake.folder_url(folder)
            )));
        }
        fields.push(Arc::new(Field::new(SOURCE_FILE, source_file_type(), false)));
        Ok(Self {
            lake: lake.clone(),
            folder: folder.to_string(),
            format,
            file_schema,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

/// Parquet objects under a lake folder, sorted by path.
async fn list(lake: &Lake, folder: &str) -> Result<Vec<ObjectMeta>> {
    let prefix = lake.path(folder);
    let mut objects: Vec<ObjectMeta> = lake
        .store()
        .list(Some(&prefix))
        .try_filter(|m| futures::future::ready(m.location.as_ref().ends_with(".parquet")))
        .try_collect()
        .await
        .map_err(|e| DataFusionError::ObjectStore(Box::new(e)))?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(objects)
}

/// `location` relative to the lake folder `folder` (`""`: the lake root).
fn relative(lake: &Lake, folder: &str, location: &datafusion::object_store::path::Path) -> String {
    let base = lake.path(folder);
    location
        .prefix_match(&base)
        .map(|parts| {
            parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_else(|| location.to_string())
}

/// Whether a filter reads `source_file` only (and can be evaluated on the file names).
fn on_source_file(filter: &Expr) -> bool {
    let columns = filter.column_refs();
    !columns.is_empty() && columns.iter().all(|c| c.name == SOURCE_FILE) && !filter.is_volatile()
}

/// Which of the files (by name) the filters on `source_file` keep.
fn files_kept(state: &dyn Session, filters: &[Expr], names: &[String]) -> Result<Vec<bool>> {
    let mut keep = vec![true; names.len()];
    let applicable: Vec<&Expr> = filters.iter().filter(|f| on_source_file(f)).collect();
    if applicable.is_empty() || names.is_empty() {
        return Ok(keep);
    }
    let schema = Arc::new(Schema::new(vec![Field::new(
        SOURCE_FILE,
        source_file_type(),
        false,
    )]));
    let column: DictionaryArray<UInt16Type> = names.iter().map(String::as_str).collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(column)])?;
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    for filter in applicable {
        let expr = state.create_physical_expr(filter.clone(), &df_schema)?;
        let value = expr.evaluate(&batch)?.into_array(names.len())?;
        let value = datafusion::arrow::compute::cast(&value, &DataType::Boolean)?;
        let value = value.as_boolean();
        for (i, k) in keep.iter_mut().enumerate() {
            *k &= value.is_valid(i) && value.value(i);
        }
    }
    Ok(keep)
}

#[async_trait]
impl TableProvider for SalesFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filter is applied again above the scan; here it only skips files.
        Ok(filters
            .iter()
            .map(|f| {
                if on_source_file(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let objects = list(&self.lake, &self.folder).await?;
        let names: Vec<String> = objects
            .iter()
            .map(|o| relative(&self.lake, &self.folder, &o.location))
            .collect();
        let keep = files_kept(state, filters, &names)?;
        let objects: Vec<(ObjectMeta, String)> = objects
            .into_iter()
            .zip(names)
            .zip(keep)
            .filter_map(|(file, k)| k.then_some(file))
            .collect();
        if objects.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // Files spread round-robin over the target partitions; the optimiser may split large
        // files further by byte range.
        let n_groups = state.config().target_partitions().clamp(1, objects.len());
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); n_groups];
        for (i, (o, name)) in objects.into_iter().enumerate() {
            let value = ScalarValue::Dictionary(
                Box::new(DataType::UInt16),
                Box::new(ScalarValue::Utf8(Some(name))),
            );
            groups[i % n_groups]
                .push(PartitionedFile::new_from_meta(o).with_partition_values(vec![value]));
        }
        let table_schema = TableSchema::builder(Arc::clone(&self.file_schema))
            .with_table_partition_cols(vec![Arc::new(Field::new(
                SOURCE_FILE,
                source_file_type(),
                false,
            ))])
            .build();
        let source = self.format.file_source(table_schema);
        let config = FileScanConfigBuilder::new(self.lake.store_url().clone(), source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        self.format.create_physical_plan(state, config).await
    }
}

/// The lake's bucket grid: every usable `ts` is `phase_us` plus a whole number of `step_us`
/// microseconds. `None` when sales have fewer than two distinct timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub step_us: i64,
    pub phase_us: i64,
}

/// Infers the grid from the distinct timestamps (microseconds) of a lake's sales: the step is
/// the most common gap between consecutive distinct timestamps (as the detector infers it per
/// series), the phase the most common remainder modulo the step (ties to the smallest), so a
/// few stray timestamps move neither.
pub fn infer_grid(distinct_ts: &mut Vec<i64>) -> Option<Grid> {
    distinct_ts.sort_unstable();
    distinct_ts.dedup();
    let step_us = mrs_detect::model::grid::infer_step(distinct_ts)?;
    let mut phases: Vec<i64> = distinct_ts.iter().map(|t| t.rem_euclid(step_us)).collect();
    phases.sort_unstable();
    let mut best = (0usize, 0i64);
    let mut i = 0;
    while i < phases.len() {
        let j = i + phases[i..].iter().take_while(|p| **p == phases[i]).count();
        if j - i > best.0 {
            best = (j - i, phases[i]);
        }
        i = j;
    }
    Some(Grid {
        step_us,
        phase_us: best.1,
    })
}

/// Registers the one-row table `sales_grid(step_us, phase_us)` inferred from the `sales` view
/// (NULLs when there is no grid).
pub async fn register_grid(ctx: &SessionContext) -> Result<Option<Grid>> {
    let batches = ctx
        .sql("SELECT DISTINCT CAST(ts AS BIGINT) AS t FROM sales WHERE ts IS NOT NULL")
        .await?
        .collect()
        .await?;
    let mut ts = Vec::new();
    for b in &batches {
        let c = b.column(0).as_primitive::<Int64Type>();
        ts.extend((0..c.len()).filter(|i| !c.is_null(*i)).map(|i| c.value(i)));
    }
    let grid = infer_grid(&mut ts);
    let schema = Arc::new(Schema::new(vec![
        Field::new("step_us", DataType::Int64, true),
        Field::new("phase_us", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![grid.map(|g| g.step_us)])),
            Arc::new(Int64Array::from(vec![grid.map(|g| g.phase_us)])),
        ],
    )?;
    ctx.register_table(
        "sales_grid",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn the_grid_is_the_common_step_and_phase() {
        assert_eq!(infer_grid(&mut vec![]), None);
        assert_eq!(infer_grid(&mut vec![HOUR]), None);
        // Hourly with one stray half-hour row: neither the step nor the phase moves.
        let mut ts: Vec<i64> = (0..48).map(|h| h * HOUR).collect();
        ts.push(10 * HOUR + HOUR / 2);
        assert_eq!(
            infer_grid(&mut ts),
            Some(Grid {
                step_us: HOUR,
                phase_us: 0
            })
        );
        // Weekly buckets starting on Mondays (the epoch was a Thursday): phase 4 days.
        let week = 7 * 24 * HOUR;
        let monday = 4 * 24 * HOUR;
        let mut ts: Vec<i64> = (0..10).map(|w| monday + w * week).collect();
        assert_eq!(
            infer_grid(&mut ts),
            Some(Grid {
                step_us: week,
                phase_us: monday
            })
        );
    }
}
