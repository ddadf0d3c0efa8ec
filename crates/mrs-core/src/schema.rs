//! Input tables (DESIGN §2): names under the lake and canonical Arrow schemas.
//!
//! Inputs may arrive with any timestamp unit, with or without a time zone, and with strings as
//! Utf8, LargeUtf8 or Utf8View; the lake normalises them through views to the canonical types
//! below (timestamps in microseconds, UTC).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The canonical timestamp type of every MRS output.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// An input table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputTable {
    /// Table name in SQL, and folder under `<lake>/input/`.
    pub name: &'static str,
    /// Required tables fail a run when absent; optional ones are evidence when present.
    pub required: bool,
}

pub const INPUT_TABLES: [InputTable; 7] = [
    InputTable {
        name: "sales",
        required: true,
    },
    InputTable {
        name: "stores",
        required: true,
    },
    InputTable {
        name: "skus",
        required: true,
    },
    InputTable {
        name: "promotions",
        required: false,
    },
    InputTable {
        name: "marketing_spend",
        required: false,
    },
    InputTable {
        name: "social_mentions",
        required: false,
    },
    InputTable {
        name: "holidays",
        required: false,
    },
];

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

pub fn sales_schema() -> SchemaRef {
    schema(vec![
        Field::new("retailer_id", DataType::Utf8, true),
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("ts", ts_type(), true),
        Field::new("units", DataType::Float64, true),
        Field::new("revenue", DataType::Float64, true),
    ])
}

pub fn stores_schema() -> SchemaRef {
    schema(vec![
        Field::new("store_id", DataType::Utf8, false),
        Field::new("retailer_id", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("lat", DataType::Float64, true),
        Field::new("lon", DataType::Float64, true),
    ])
}

pub fn skus_schema() -> SchemaRef {
    schema(vec![
        Field::new("sku", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, true),
        Field::new("brand", DataType::Utf8, true),
    ])
}

pub fn promotions_schema() -> SchemaRef {
    schema(vec![
        Field::new("promo_id", DataType::Utf8, true),
        Field::new("retailer_id", DataType::Utf8, true),
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("brand", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("start_ts", ts_type(), false),
        Field::new("end_ts", ts_type(), false),
        Field::new("kind", DataType::Utf8, true),
    ])
}

pub fn marketing_spend_schema() -> SchemaRef {
    schema(vec![
        Field::new("brand", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("day", DataType::Date32, false),
        Field::new("spend", DataType::Float64, true),
    ])
}

pub fn social_mentions_schema() -> SchemaRef {
    schema(vec![
        Field::new("sku", DataType::Utf8, false),
        Field::new("ts", ts_type(), false),
        Field::new("mentions", DataType::Float64, true),
    ])
}

/// Holidays are optional context: days whose uplift is expected, not anomalous. `region` NULL
/// means every region.
pub fn holidays_schema() -> SchemaRef {
    schema(vec![
        Field::new("day", DataType::Date32, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
    ])
}

/// The canonical schema of an input table by name.
pub fn input_schema(name: &str) -> Option<SchemaRef> {
    Some(match name {
        "sales" => sales_schema(),
        "stores" => stores_schema(),
        "skus" => skus_schema(),
        "promotions" => promotions_schema(),
        "marketing_spend" => marketing_spend_schema(),
        "social_mentions" => social_mentions_schema(),
        "holidays" => holidays_schema(),
        _ => return None,
    })
}

/// Ground truth written by the synthetic generator under `<lake>/truth/anomalies/`.
pub fn truth_schema() -> SchemaRef {
    schema(vec![
        Field::new("anomaly_id", DataType::Utf8, false),
        Field::new("cause", DataType::Utf8, false),
        Field::new("impact_vector", DataType::Utf8, false),
        Field::new(
            "retailer_ids",
            DataType::new_list(DataType::Utf8, true),
            false,
        ),
        Field::new("store_ids", DataType::new_list(DataType::Utf8, true), false),
        Field::new("skus", DataType::new_list(DataType::Utf8, true), false),
        Field::new("start_ts", ts_type(), false),
        Field::new("end_ts", ts_type(), false),
        Field::new("magnitude", DataType::Float64, false),
        Field::new("direction", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, true),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_table_has_a_schema() {
        for t in INPUT_TABLES {
            assert!(input_schema(t.name).is_some(), "{}", t.name);
        }
        assert!(input_schema("nope").is_none());
    }
}
