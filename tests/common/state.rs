//! What a lake holds, as sorted text rows per table, for comparing two lakes: the hydrated
//! views, the protection feeds as outside readers get them, and the logs' logical rows
//! (without the columns that only say which run wrote a row and when).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::ParquetReadOptions;
use mrs_pipeline::Lake;

/// Columns that name the writing run or its clock.
const RUN_COLUMNS: &[&str] = &[
    "run_id",
    "written_at",
    "decided_at",
    "applied_at",
    "started_at",
    "finished_at",
    "detected_at",
];

/// Hydrated views compared beside the feeds and the logs.
const VIEWS: &[&str] = &["minority_reports", "minority_events", "review_queue"];
/// Logs no stage appends to but a run can write (the runs log records runs, so it differs by
/// nature and is left out).
const OTHER_LOGS: &[&str] = &["automation_rules_log", "mrs_migrations_log"];

/// The protection feeds, as the runner writes them.
pub fn feeds() -> impl Iterator<Item = &'static str> {
    mrs_pipeline::runner::FEEDS.iter().map(|(name, _)| *name)
}

/// Hydrated views, feeds and logs compared: the runner's lists, so a new log is compared too.
pub fn tables() -> Vec<&'static str> {
    VIEWS
        .iter()
        .copied()
        .chain(feeds())
        .chain(mrs_pipeline::runner::LOGS.iter().copied())
        .chain(OTHER_LOGS.iter().copied())
        .collect()
}

fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let keep: Vec<usize> = (0..b.num_columns())
            .filter(|&i| !RUN_COLUMNS.contains(&b.schema().field(i).name().as_str()))
            .collect();
        let formatters: Vec<ArrayFormatter<'_>> = keep
            .iter()
            .map(|&i| ArrayFormatter::try_new(b.column(i).as_ref(), &options).expect("format"))
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| f.value(r).to_string()).collect();
            out.push(cells.join(" | "));
        }
    }
    out.sort();
    out
}

/// Every compared table of a local lake: name to sorted rows.
pub async fn snapshot(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    let ctx = mrs_pipeline::open_session(lake, None)
        .await
        .expect("session");
    let mut out = BTreeMap::new();
    for t in tables() {
        let batches = ctx
            .sql(&format!("SELECT * FROM {t}"))
            .await
            .expect("plan")
            .collect()
            .await
            .unwrap_or_else(|e| panic!("reading {t}: {e}"));
        out.insert(t.to_string(), rows(&batches));
    }
    out.extend(feed_files(lake).await);
    out
}

/// The protection feeds as an outside reader of `protection/<feed>/` gets them: name to sorted
/// rows (`feed_file_<feed>`).
pub async fn feed_files(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    let ctx = mrs_pipeline::open_session(lake, None)
        .await
        .expect("session");
    let mut out = BTreeMap::new();
    for feed in feeds() {
        let name = format!("feed_file_{feed}");
        ctx.register_parquet(
            &name,
            lake.folder_url(&format!("protection/{feed}")),
            ParquetReadOptions::default(),
        )
        .await
        .expect("feed");
        let batches = ctx
            .sql(&format!("SELECT * FROM {name}"))
            .await
            .expect("plan")
            .collect()
            .await
            .expect("feed rows");
        out.insert(name, rows(&batches));
    }
    out
}

/// Asserts two snapshots are equal, naming the first table that differs.
pub fn assert_same(got: &BTreeMap<String, Vec<String>>, want: &BTreeMap<String, Vec<String>>) {
    for (table, want_rows) in want {
        let got_rows = &got[table];
        if got_rows != want_rows {
            let extra: Vec<_> = got_rows
                .iter()
                .filter(|r| !want_rows.contains(r))
                .take(3)
                .collect();
            let missing: Vec<_> = want_rows
                .iter()
                .filter(|r| !got_rows.contains(r))
                .take(3)
                .collect();
            panic!(
                "{table}: {} rows, expected {}\n  extra: {extra:#?}\n  missing: {missing:#?}",
                got_rows.len(),
                want_rows.len()
            );
        }
    }
}

/// Reads every `.parquet` file under a directory to the end; returns (files, staging files).
/// A file that cannot be read is a reader seeing a partial write.
pub fn check_parquet_files(dir: &Path) -> (usize, usize) {
    let (mut files, mut staging) = (0, 0);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if mrs_pipeline::lake::is_staging_name(&name) {
                staging += 1;
            } else if name.ends_with(".parquet") {
                let file = std::fs::File::open(&path).expect("open");
                let reader =
                    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .and_then(|b| b.build())
                        .unwrap_or_else(|e| panic!("{} is not whole: {e}", path.display()));
                for batch in reader {
                    batch.unwrap_or_else(|e| panic!("{} is not whole: {e}", path.display()));
                }
                files += 1;
            }
        }
    }
    (files, staging)
}
