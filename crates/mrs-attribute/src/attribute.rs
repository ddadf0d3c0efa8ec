//! `mrs_attribute(features)`: evidence-based cause attribution of one Minority Report.
//!
//! Contract:
//!
//! | item | value |
//! |---|---|
//! | input | one struct (`named_struct(...)`) with the fields of docs/ARCHITECTURE.md, read by name; unknown fields ignored; strings Utf8/LargeUtf8/Utf8View, numbers of any numeric type (or boolean) |
//! | minimum samples | none; shape signals need a profile of 3 or more points |
//! | missing field / NULL / NaN / infinity | no evidence: the signals that need it are absent |
//! | NULL struct, or all fields NULL | a valid result: every cause 0.2, tier `Low`, the narrative says no evidence separates the causes |
//! | wrong argument type | planning error |
//! | output | struct{cause, confidence, cause_2, confidence_2, cause_3, confidence_3, impact_vector, confidence_tier, narrative, evidence List<Struct{feature, value, favours, weight}>, localisation List<Struct{dimension, value, share}>} |
//! | complexity | O(fields + profile length) per row |
//!
//! The model ([`crate::model`]) is the default [`AttributionModel`]; `_2` / `_3` are filled
//! whenever their probability is above 0 (always, with a finite softmax).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, ListArray, StringArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::common::utils::take_function_args;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_macros::user_doc;

use crate::features::{check_type, read_features};
use crate::model::{Attribution, AttributionModel};

fn evidence_fields() -> Fields {
    Fields::from(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("favours", DataType::Utf8, false),
        Field::new("weight", DataType::Float64, false),
    ])
}

fn localisation_fields() -> Fields {
    Fields::from(vec![
        Field::new("dimension", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("share", DataType::Float64, false),
    ])
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(fields),
        true,
    )))
}

/// The features struct with every known field at its canonical type (strings Utf8, numbers
/// Float64, profile `List<Struct{ts Timestamp(us, UTC), actual, baseline}>`): the example type
/// that `SHOW FUNCTIONS` lists. Any struct is accepted (fields are read by name).
pub fn canonical_features_type() -> DataType {
    use crate::features::{NUMBER_FIELDS, TEXT_FIELDS};
    let mut fields: Vec<Field> = TEXT_FIELDS
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect();
    fields.extend(
        NUMBER_FIELDS
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true)),
    );
    let point = Fields::from(vec![
        Field::new(
            "ts",
            DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Microsecond,
                Some("UTC".into()),
            ),
            true,
        ),
        Field::new("actual", DataType::Float64, true),
        Field::new("baseline", DataType::Float64, true),
    ]);
    fields.push(Field::new("profile", list_of(point), true));
    DataType::Struct(Fields::from(fields))
}

/// The output struct's fields, in order.
pub fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("cause", DataType::Utf8, false),
        Field::new("confidence", DataType::Float64, false),
        Field::new("cause_2", DataType::Utf8, true),
        Field::new("confidence_2", DataType::Float64, true),
        Field::new("cause_3", DataType::Utf8, true),
        Field::new("confidence_3", DataType::Float64, true),
        Field::new("impact_vector", DataType::Utf8, false),
        Field::new("confidence_tier", DataType::Utf8, false),
        Field::new("narrative", DataType::Utf8, false),
        Field::new("evidence", list_of(evidence_fields()), false),
        Field::new("localisation", list_of(localisation_fields()), false),
    ])
}

fn nth(a: &Attribution, k: usize) -> (Option<&'static str>, Option<f64>) {
    match a.ranked.get(k) {
        Some((c, p)) if *p > 0.0 => (Some(c.as_str()), Some(*p)),
        _ => (None, None),
    }
}

fn to_struct(results: &[Attribution]) -> Result<StructArray> {
    let field_list =
        |fields: Fields| Arc::new(Field::new_list_field(DataType::Struct(fields), true));
    let ev: Vec<_> = results.iter().flat_map(|r| r.evidence.iter()).collect();
    let ev_struct = StructArray::try_new(
        evidence_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(
                ev.iter().map(|e| e.feature.as_str()),
            )),
            Arc::new(Float64Array::from_iter(
                ev.iter().map(|e| e.value.is_finite().then_some(e.value)),
            )),
            Arc::new(StringArray::from_iter_values(
                ev.iter().map(|e| e.favours.as_str()),
            )),
            Arc::new(Float64Array::from_iter_values(ev.iter().map(|e| e.weight))),
        ],
        None,
    )?;
    let evidence = ListArray::try_new(
        field_list(evidence_fields()),
        OffsetBuffer::from_lengths(results.iter().map(|r| r.evidence.len())),
        Arc::new(ev_struct),
        None,
    )?;
    let lo: Vec<_> = results.iter().flat_map(|r| r.localisation.iter()).collect();
    let lo_struct = StructArray::try_new(
        localisation_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(
                lo.iter().map(|l| l.dimension),
            )),
            Arc::new(StringArray::from_iter_values(
                lo.iter().map(|l| l.value.as_str()),
            )),
            Arc::new(Float64Array::from_iter_values(lo.iter().map(|l| l.share))),
        ],
        None,
    )?;
    let localisation = ListArray::try_new(
        field_list(localisation_fields()),
        OffsetBuffer::from_lengths(results.iter().map(|r| r.localisation.len())),
        Arc::new(lo_struct),
        None,
    )?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            results.iter().map(|r| r.ranked[0].0.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            results.iter().map(|r| r.ranked[0].1),
        )),
        Arc::new(StringArray::from_iter(results.iter().map(|r| nth(r, 1).0))),
        Arc::new(Float64Array::from_iter(results.iter().map(|r| nth(r, 1).1))),
        Arc::new(StringArray::from_iter(results.iter().map(|r| nth(r, 2).0))),
        Arc::new(Float64Array::from_iter(results.iter().map(|r| nth(r, 2).1))),
        Arc::new(StringArray::from_iter_values(
            results.iter().map(|r| r.impact_vector.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            results.iter().map(|r| r.confidence_tier.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            results.iter().map(|r| r.narrative.as_str()),
        )),
        Arc::new(evidence),
        Arc::new(localisation),
    ];
    Ok(StructArray::try_new(output_fields(), columns, None)?)
}

#[user_doc(
    doc_section(label = "MRS Attribution Functions"),
    description = "Proposes the cause of a Minority Report (Data Error, Marketing Misattribution, Competitor Stockout, Social/Viral Event, Operational/Store Issue) from a struct of features: bounded evidence signals weighted per cause (log-likelihood ratios), softmax probabilities, the top three candidates, impact vector, confidence tier, the evidence list, an Adtributor-style localisation and a plain-English narrative. Missing or NULL fields are no evidence.",
    syntax_example = "mrs_attribute(named_struct('direction', direction, 'store_id', store_id, ...))",
    sql_example = r#"```sql
> SELECT mrs_attribute(named_struct('direction', 'drop', 'store_id', 'S1',
         'affected_skus', 40, 'total_skus', 40, 'relative_change', -0.95,
         'duration_buckets', 5, 'co_sku_stores', 0))['cause'];
+-------------------------+
| Operational/Store Issue |
+-------------------------+
```"#,
    argument(
        name = "features",
        description = "Struct of named features (docs/ARCHITECTURE.md, Attribution input); unknown fields are ignored."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AttributeFunc {
    signature: Signature,
}

impl Default for AttributeFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl AttributeFunc {
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Any(1),
                    TypeSignature::Exact(vec![canonical_features_type()]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for AttributeFunc {
    fn name(&self) -> &str {
        "mrs_attribute"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [arg] = take_function_args(self.name(), arg_types)?;
        check_type(self.name(), arg)?;
        Ok(DataType::Struct(output_fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [features] = take_function_args(self.name(), args.args)?;
        let is_scalar = matches!(features, ColumnarValue::Scalar(_));
        let array = features.to_array(if is_scalar { 1 } else { rows })?;
        let model = AttributionModel::fitted();
        let results: Vec<Attribution> = read_features(&array)?
            .iter()
            .map(|f| model.attribute(f))
            .collect();
        let out = Arc::new(to_struct(&results)?) as ArrayRef;
        if is_scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
