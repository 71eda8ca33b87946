//! Money columns: a table with a currency (`transactioncurrencyid`) keeps
//! `exchangerate` and a `<column>_base` per money column, which the service
//! computes on every write and never takes from a client.
//!
//! `exchangerate` is the rate of the row's currency (1 without one), and
//! `<column>_base = <column> / exchangerate`, the value in the base
//! currency, kept to four decimal places as money is (account reference,
//! columns `exchangerate`, `creditlimit_base`:
//! <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/account>).

use std::str::FromStr;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value};

use super::super::SharedState;
use super::super::store::Tx;
use super::bad_request;
use super::write::{Abort, abort, guid_pk};
use dualwrite::schema::{FieldType, TableDef};

/// The lookup that gives a row its currency.
const CURRENCY: &str = "transactioncurrencyid";

fn has_money(table: &TableDef) -> bool {
    table
        .field(CURRENCY)
        .is_some_and(|f| f.field_type == FieldType::Lookup)
        && table.field("exchangerate").is_some()
}

/// True when the client may not write `name`: `exchangerate` and the
/// `_base` columns of a table with money columns.
pub(super) fn computed(table: &TableDef, name: &str) -> bool {
    has_money(table)
        && (name == "exchangerate"
            || name
                .strip_suffix("_base")
                .is_some_and(|m| table.field(m).is_some()))
}

fn decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok(),
        _ => None,
    }
}

fn number(d: Decimal) -> Value {
    d.to_f64()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// Sets `exchangerate` and every `_base` column of `row` from its currency.
pub(super) fn derive(
    state: &SharedState,
    tx: &Tx<'_>,
    table: &TableDef,
    row: &mut Map<String, Value>,
) -> Result<(), Abort> {
    if !has_money(table) {
        return Ok(());
    }
    let currency = row
        .get(&format!("_{CURRENCY}_value"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let rate = match currency {
        None => Decimal::ONE,
        Some(id) => {
            let target = table
                .field(CURRENCY)
                .and_then(|f| f.target.as_deref())
                .unwrap_or("transactioncurrencies");
            let stored = match state.metadata.table(target) {
                Some(t) => tx.get(&t.name, &guid_pk(&id))?,
                None => None,
            };
            stored
                .and_then(|r| r.row.get("exchangerate").and_then(decimal))
                .filter(|r| !r.is_zero())
                .unwrap_or(Decimal::ONE)
        }
    };
    row.insert("exchangerate".into(), number(rate));
    let money: Vec<String> = table
        .fields
        .iter()
        .filter_map(|f| f.name.strip_suffix("_base"))
        .filter(|m| table.field(m).is_some())
        .map(str::to_string)
        .collect();
    for column in money {
        let base = match row.get(&column).and_then(decimal) {
            Some(value) => match value.checked_div(rate) {
                Some(b) => number(b.round_dp(4)),
                None => {
                    return Err(abort(bad_request(format!(
                        "{column} / exchangerate does not fit a money column"
                    ))));
                }
            },
            None => Value::Null,
        };
        row.insert(format!("{column}_base"), base);
    }
    Ok(())
}
