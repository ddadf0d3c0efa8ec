//! The lake: a URL (`file://…`, a local path, or an object-store URL), its object store, and the
//! registration of its input tables behind normalising views.
//!
//! Inputs may arrive with any timestamp unit, naive or zoned, strings as Utf8/LargeUtf8/Utf8View
//! and integer or float units (DESIGN §2). Each table `<name>` is registered as `<name>_raw`
//! (the files as they are) and a view `<name>` that casts every contract column to its canonical
//! type. A missing required table or column is an error naming the table, the column and the
//! lake location; an absent optional table is an empty table with the canonical schema.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::object_store::ObjectStore;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::TryStreamExt;
use mrs_core::schema::{INPUT_TABLES, input_schema};
use url::Url;

use crate::sales_files::{self, SOURCE_FILE, SalesFiles};

/// A lake location and the object store that serves it.
#[derive(Debug, Clone)]
pub struct Lake {
    /// Normalised URL without a trailing slash, e.g. `file:///tmp/lake` or `s3://bucket/lake`.
    url: String,
    store: Arc<dyn ObjectStore>,
    /// The lake's root inside its object store.
    root: ObjectPath,
    store_url: ObjectStoreUrl,
}

impl Lake {
    /// Opens a lake from a URL or a local path (created if missing).
    pub fn open(location: &str) -> Result<Self> {
        let url = if location.contains("://") {
            Url::parse(location)
                .map_err(|e| DataFusionError::Plan(format!("invalid lake URL '{location}': {e}")))?
        } else {
            let path = std::path::Path::new(location);
            std::fs::create_dir_all(path).map_err(|e| {
                DataFusionError::Plan(format!("cannot create lake directory '{location}': {e}"))
            })?;
            let abs = path.canonicalize()?;
            Url::from_directory_path(&abs).map_err(|()| {
                DataFusionError::Plan(format!("lake path '{}' is not absolute", abs.display()))
            })?
        };
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| DataFusionError::Plan(format!("invalid file URL '{url}'")))?;
            std::fs::create_dir_all(&path)?;
        }
        let (store, root) = datafusion::object_store::parse_url_opts(&url, store_options(&url))
            .map_err(|e| DataFusionError::Plan(format!("cannot open lake '{url}': {e}")))?;
        let store_url = ObjectStoreUrl::parse(format!(
            "{}://{}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        ))?;
        let normalised = url.as_str().trim_end_matches('/').to_string();
        Ok(Self {
            url: normalised,
            store: Arc::from(store),
            root,
            store_url,
        })
    }

    /// The local directory of a `file://` lake.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        Url::parse(&self.url).ok()?.to_file_path().ok()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    pub fn root(&self) -> &ObjectPath {
        &self.root
    }

    /// The URL a context knows the lake's object store by.
    pub fn store_url(&self) -> &ObjectStoreUrl {
        &self.store_url
    }

    /// URL of a folder under the lake, with a trailing slash (what `LOCATION` wants).
    pub fn folder_url(&self, relative: &str) -> String {
        format!("{}/{}/", self.url, relative.trim_matches('/'))
    }

    /// Object-store path of a folder or file under the lake.
    pub fn path(&self, relative: &str) -> ObjectPath {
        let mut parts: Vec<String> = self.root.parts().map(|p| p.as_ref().to_string()).collect();
        parts.extend(
            relative
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        ObjectPath::from_iter(parts)
    }

    /// Makes the lake's object store known to a context.
    pub fn register_object_store(&self, ctx: &SessionContext) -> Result<()> {
        if self.store_url.as_str().starts_with("file://") {
            // The local file system is registered by default.
            return Ok(());
        }
        ctx.register_object_store(self.store_url.as_ref(), Arc::clone(&self.store));
        Ok(())
    }

    /// Paths of the Parquet files directly under a lake folder, sorted.
    pub async fn list_parquet(&self, relative: &str) -> Result<Vec<ObjectPath>> {
        let prefix = self.path(relative);
        let mut files: Vec<ObjectPath> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_filter(|p| futures::future::ready(p.as_ref().ends_with(".parquet")))
            .try_collect()
            .await
            .map_err(|e| DataFusionError::ObjectStore(Box::new(e)))?;
        files.sort();
        Ok(files)
    }

    /// Deletes what writers killed mid-write left in a local lake: the local object store
    /// writes `<name>#<n>` beside its target, then renames it. DataFusion's listings skip such
    /// files but other Parquet readers do not. Only files older than a minute go, so a write
    /// in progress (an analyst's INSERT beside a run) keeps its own. On S3 a killed upload is
    /// never visible (a bucket lifecycle rule reclaims incomplete multipart uploads).
    pub async fn remove_stale_staging_files(&self) -> Result<usize> {
        let Some(dir) = self.local_dir() else {
            return Ok(0);
        };
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let mut removed = 0;
        let mut pending = vec![dir];
        while let Some(folder) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    pending.push(path);
                } else if is_staging_name(&entry.file_name().to_string_lossy())
                    && meta.modified().is_ok_and(|m| m < cutoff)
                {
                    std::fs::remove_file(&path)?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            log::info!("removed {removed} staging files of interrupted writes");
        }
        Ok(removed)
    }

    /// Registers every input table of DESIGN §2 (raw files plus a normalising view).
    /// `as_of_micros` hides sales buckets at or after that instant.
    pub async fn register_inputs(
        &self,
        ctx: &SessionContext,
        as_of_micros: Option<i64>,
    ) -> Result<()> {
        for table in INPUT_TABLES {
            let folder = format!("input/{}", table.name);
            let canonical = input_schema(table.name).ok_or_else(|| {
                DataFusionError::Internal(format!("no schema for {}", table.name))
            })?;
            let raw = format!("{}_raw", table.name);
            if self.list_parquet(&folder).await?.is_empty() {
                if table.required {
                    return Err(DataFusionError::Plan(format!(
                        "input table '{}' has no Parquet files at {}",
                        table.name,
                        self.folder_url(&folder)
                    )));
                }
                let empty = MemTable::try_new(Arc::clone(&canonical), vec![vec![]])?;
                ctx.register_table(raw.as_str(), Arc::new(empty))?;
            } else if table.name == "sales" {
                // One scan that knows each row's file: the arrival order of corrections.
                let files = SalesFiles::try_new(ctx, self, &folder).await?;
                ctx.register_table(raw.as_str(), Arc::new(files))?;
            } else {
                ctx.register_parquet(
                    raw.as_str(),
                    self.folder_url(&folder),
                    ParquetReadOptions::default(),
                )
                .await?;
            }
            let raw_schema = ctx.table_provider(raw.as_str()).await?.schema();
            let mut view = normalising_view_sql(table.name, &raw, &raw_schema, &canonical)?;
            if table.name == "sales"
                && let Some(as_of) = as_of_micros
            {
                // On the parsed ts; rows without one still reach the quarantine.
                view = format!(
                    "SELECT * FROM ({view}) WHERE ts IS NULL OR ts < CAST('{}' AS TIMESTAMP(6) WITH TIME ZONE)",
                    mrs_core::identity::rfc3339_utc_micros(as_of)
                );
            }
            ctx.sql(&format!("CREATE OR REPLACE VIEW {} AS {view}", table.name))
                .await?
                .collect()
                .await?;
            if table.name == "sales" {
                sales_files::register_grid(ctx).await?;
            }
        }
        Ok(())
    }
}

/// A staging file of the local object store: `<name>#<digits>`.
pub fn is_staging_name(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Options for the lake's object store from the environment: credentials, endpoint, region and
/// the like come from the variables each store documents (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` or
/// `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, …; `GOOGLE_*`, `AZURE_*`), never from the URL or a file of
/// ours. Unknown variables are ignored.
fn store_options(url: &Url) -> Vec<(String, String)> {
    let prefixes: &[&str] = match url.scheme() {
        "s3" | "s3a" => &["AWS_"],
        "gs" => &["GOOGLE_"],
        "az" | "adl" | "azure" | "abfs" | "abfss" => &["AZURE_"],
        _ => &[],
    };
    std::env::vars()
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// `SELECT` list casting each canonical column of a raw input table to its canonical type.
///
/// Sales may also bring `ts`, `units` and `revenue` as strings (CSV exports converted to
/// Parquet): they are parsed with `TRY_CAST`, and the column `unparsable` names the first
/// column of a row whose text did not parse (its row is quarantined, sql/views/00_inputs.sql).
/// The sales view also carries `source_file`, the row's file under `input/sales/`.
fn normalising_view_sql(
    table: &str,
    raw: &str,
    raw_schema: &Schema,
    canonical: &Schema,
) -> Result<String> {
    let sales = table == "sales";
    let mut columns = Vec::new();
    let mut unparsable = Vec::new();
    for field in canonical.fields() {
        let name = field.name();
        let Ok(found) = raw_schema.field_with_name(name) else {
            if field.is_nullable() && !matches!(name.as_str(), "units" | "store_id" | "sku" | "ts")
            {
                columns.push(format!(
                    "CAST(NULL AS {}) AS {name}",
                    sql_type(field.data_type())
                ));
                continue;
            }
            return Err(DataFusionError::Plan(format!(
                "input table '{table}' is missing column '{name}' (expected {})",
                field.data_type()
            )));
        };
        let is_string = matches!(
            found.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)
        );
        let compatible = match field.data_type() {
            DataType::Utf8 => is_string,
            DataType::Float64 => found.data_type().is_numeric() || (sales && is_string),
            DataType::Timestamp(_, _) => {
                matches!(found.data_type(), DataType::Timestamp(_, _)) || (sales && is_string)
            }
            DataType::Date32 => matches!(
                found.data_type(),
                DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
            ),
            _ => false,
        };
        if !compatible {
            return Err(DataFusionError::Plan(format!(
                "input table '{table}' column '{name}' has type {}, expected {}",
                found.data_type(),
                field.data_type()
            )));
        }
        let target = sql_type(field.data_type());
        if is_string && field.data_type() != &DataType::Utf8 {
            // Blank text is a missing value, not a parse failure.
            let text = format!("NULLIF(trim(CAST(\"{name}\" AS VARCHAR)), '')");
            columns.push(format!("TRY_CAST({text} AS {target}) AS {name}"));
            unparsable.push(format!(
                "WHEN {text} IS NOT NULL AND TRY_CAST({text} AS {target}) IS NULL THEN 'unparsable {name}'"
            ));
        } else {
            columns.push(format!("CAST(\"{name}\" AS {target}) AS {name}"));
        }
    }
    if sales {
        columns.push(if unparsable.is_empty() {
            "CAST(NULL AS VARCHAR) AS unparsable".to_string()
        } else {
            format!("CASE {} END AS unparsable", unparsable.join(" "))
        });
        columns.push(SOURCE_FILE.to_string());
    }
    Ok(format!("SELECT {} FROM {raw}", columns.join(", ")))
}

fn sql_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Utf8 => "VARCHAR",
        DataType::Float64 => "DOUBLE",
        DataType::Timestamp(_, _) => "TIMESTAMP(6) WITH TIME ZONE",
        DataType::Date32 => "DATE",
        _ => "VARCHAR",
    }
}
