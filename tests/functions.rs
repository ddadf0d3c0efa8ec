//! Across every MRS crate: no two functions share a name or alias, none shadows a DataFusion
//! built-in, and every one is documented, so `SHOW FUNCTIONS` explains them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::planner::ExprPlanner;
use datafusion::logical_expr::registry::MemoryFunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;

/// Records every name and alias registered, with its kind and whether it is documented.
#[derive(Default)]
struct Recorder {
    inner: MemoryFunctionRegistry,
    names: Vec<(String, &'static str, bool)>,
}

impl Recorder {
    fn record(&mut self, kind: &'static str, name: &str, aliases: &[String], documented: bool) {
        self.names.push((name.to_string(), kind, documented));
        for a in aliases {
            self.names.push((a.clone(), kind, documented));
        }
    }
}

impl FunctionRegistry for Recorder {
    fn udfs(&self) -> HashSet<String> {
        self.inner.udfs()
    }
    fn higher_order_function_names(&self) -> HashSet<String> {
        self.inner.higher_order_function_names()
    }
    fn udafs(&self) -> HashSet<String> {
        self.inner.udafs()
    }
    fn udwfs(&self) -> HashSet<String> {
        self.inner.udwfs()
    }
    fn udf(&self, name: &str) -> Result<Arc<ScalarUDF>> {
        self.inner.udf(name)
    }
    fn higher_order_function(&self, name: &str) -> Result<Arc<HigherOrderUDF>> {
        self.inner.higher_order_function(name)
    }
    fn udaf(&self, name: &str) -> Result<Arc<AggregateUDF>> {
        self.inner.udaf(name)
    }
    fn udwf(&self, name: &str) -> Result<Arc<WindowUDF>> {
        self.inner.udwf(name)
    }
    fn expr_planners(&self) -> Vec<Arc<dyn ExprPlanner>> {
        self.inner.expr_planners()
    }
    fn register_udf(&mut self, udf: Arc<ScalarUDF>) -> Result<Option<Arc<ScalarUDF>>> {
        self.record(
            "scalar",
            udf.name(),
            udf.aliases(),
            udf.documentation().is_some(),
        );
        self.inner.register_udf(udf)
    }
    fn register_udaf(&mut self, udaf: Arc<AggregateUDF>) -> Result<Option<Arc<AggregateUDF>>> {
        self.record(
            "aggregate",
            udaf.name(),
            udaf.aliases(),
            udaf.documentation().is_some(),
        );
        self.inner.register_udaf(udaf)
    }
    fn register_udwf(&mut self, udwf: Arc<WindowUDF>) -> Result<Option<Arc<WindowUDF>>> {
        self.record(
            "window",
            udwf.name(),
            udwf.aliases(),
            udwf.documentation().is_some(),
        );
        self.inner.register_udwf(udwf)
    }
}

#[test]
fn function_names_are_unique_documented_and_do_not_shadow_builtins() {
    let mut recorder = Recorder::default();
    mrs_pipeline::register_all_functions(&mut recorder).expect("register");
    assert!(recorder.names.len() >= 10, "{:?}", recorder.names);

    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, kind, documented) in &recorder.names {
        assert!(
            seen.insert(name, kind).is_none(),
            "{name} is registered twice"
        );
        assert!(*documented, "{kind} function {name} has no documentation");
    }
    let builtin = SessionContext::new();
    let state = builtin.state();
    for (name, kind, _) in &recorder.names {
        let lower = name.to_lowercase();
        assert!(
            !state.scalar_functions().contains_key(&lower)
                && !state.aggregate_functions().contains_key(&lower)
                && !state.window_functions().contains_key(&lower),
            "{kind} function {name} shadows a DataFusion built-in"
        );
    }
}

#[tokio::test]
async fn show_functions_lists_every_mrs_function() {
    let mut recorder = Recorder::default();
    mrs_pipeline::register_all_functions(&mut recorder).expect("register");
    let ctx = mrs_pipeline::session::new_context(mrs_pipeline::session::session_config())
        .expect("context");
    let batches = ctx
        // SHOW FUNCTIONS joins routines with their OUT parameter (the return type): a function
        // whose signature yields no example types has none and is silently left out.
        .sql("SELECT DISTINCT specific_name FROM information_schema.parameters WHERE parameter_mode = 'OUT'")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let listed: HashSet<String> = batches
        .iter()
        .flat_map(|b| {
            let c = datafusion::arrow::compute::cast(
                b.column(0),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .expect("cast");
            let c = datafusion::arrow::array::AsArray::as_string::<i32>(&c).clone();
            (0..c.len())
                .map(move |i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for (name, _, _) in &recorder.names {
        assert!(
            listed.contains(name),
            "{name} is missing from SHOW FUNCTIONS"
        );
    }
}
