//! Every example plugin, as a component, through the host runtime: the same
//! outcomes as its native unit tests, with the host's checks in between.
//! `foreach_plugin!` makes a plugin without a test here fail to compile.

use crate::support::{context, rows};
use dualwrite::plugin::bindings::FieldChange;
use dualwrite::plugin::json::value_to_json;
use dualwrite::plugin::{
    Interface, Outcome, PluginLimits, Rows, Transformed, Value, ValueRef, Verdict,
};
use dualwrite_tests::*;
use serde_json::json;

macro_rules! assert_test_exists {
    ($name:ident, $path:ident) => {
        #[allow(unused_imports, reason = "the import only checks that the test exists")]
        use self::$name as _;
    };
}
foreach_plugin!(assert_test_exists);

/// The value of `field` in row `row` after the transform.
fn field(
    result: &Transformed,
    input: &dualwrite::plugin::Batch,
    row: usize,
    field: &str,
) -> serde_json::Value {
    let values = result
        .row(input, row)
        .unwrap_or_else(|| panic!("row {row} was not kept: {:?}", result.outcomes[row]));
    let index = result
        .fields
        .iter()
        .position(|f| f == field)
        .expect("field in the result");
    values[index]
        .as_ref()
        .map_or(serde_json::Value::Null, value_to_json)
}

#[test]
fn party_name_split() {
    let plugin = load(PARTY_NAME_SPLIT, PluginLimits::default());
    assert!(plugin.has_transform() && !plugin.has_filter());
    assert_eq!(plugin.id(), "party-name-split@0.1.0");
    let batch = rows(
        r#"[{"fullname": "Grace Brewster Hopper"}, {"fullname": "Ludwig van Beethoven"}, {"fullname": null}, {"fullname": 7}]"#,
    );
    let call = plugin
        .transform(&context("contacts", &[]), &batch)
        .expect("runs");
    let result = &call.result;
    assert_eq!(
        result.fields,
        ["fullname", "firstname", "middlename", "lastname"]
    );
    assert_eq!(field(result, &batch, 0, "middlename"), json!("Brewster"));
    assert_eq!(field(result, &batch, 1, "lastname"), json!("van Beethoven"));
    assert_eq!(result.outcomes[2], Outcome::Unchanged);
    assert_eq!(
        result.outcomes[3],
        Outcome::Fail("field `fullname` holds integer; expected text".into())
    );
}

#[test]
fn currency_precision() {
    let plugin = load(CURRENCY_PRECISION, PluginLimits::default());
    let batch = rows(
        r#"[
        {"CREDITLIMIT": {"decimal": "2.345"}, "BALANCE": {"decimal": "79228162514264337593543950.335"}},
        {"CREDITLIMIT": {"decimal": "2.355"}, "BALANCE": null},
        {"CREDITLIMIT": {"decimal": "2.35"}, "BALANCE": 12},
        {"CREDITLIMIT": "a lot", "BALANCE": null}
    ]"#,
    );
    let ctx = context(
        "customers",
        &[("fields", "CREDITLIMIT,BALANCE"), ("places", "2")],
    );
    let call = plugin.transform(&ctx, &batch).expect("runs");
    let result = &call.result;
    assert_eq!(
        field(result, &batch, 0, "CREDITLIMIT"),
        json!({"decimal": "2.34"}),
        "banker's rounding"
    );
    assert_eq!(
        field(result, &batch, 0, "BALANCE"),
        json!({"decimal": "79228162514264337593543950.34"}),
        "28 significant digits stay exact"
    );
    assert_eq!(
        field(result, &batch, 1, "CREDITLIMIT"),
        json!({"decimal": "2.36"})
    );
    assert_eq!(
        result.outcomes[2],
        Outcome::Changed(vec![FieldChange {
            field: 1,
            value: Some(Value::Decimal(rust_decimal::Decimal::new(1200, 2).into())),
        }]),
        "an integer is rescaled to a decimal; only the changed field crosses back"
    );
    assert!(
        matches!(&result.outcomes[3], Outcome::Fail(m) if m.contains("holds text; expected decimal"))
    );
}

#[test]
fn company_filter() {
    let plugin = load(COMPANY_FILTER, PluginLimits::default());
    assert!(plugin.has_filter() && !plugin.has_transform());
    let batch = rows(
        r#"[{"dataAreaId": "usmf"}, {"dataAreaId": "DEMF"}, {"dataAreaId": "gbsi"}, {"dataAreaId": null}]"#,
    );
    let call = plugin
        .filter(
            &context("customers", &[("companies", "USMF, demf")]),
            &batch,
        )
        .expect("runs");
    assert_eq!(
        call.result[..3],
        [
            Verdict::Keep,
            Verdict::Keep,
            Verdict::Skip("company gbsi is not one of USMF, demf".into())
        ]
    );
    assert!(matches!(&call.result[3], Verdict::Fail(m) if m.contains("has no company")));
}

#[test]
fn value_map() {
    let plugin = load(VALUE_MAP, PluginLimits::default());
    let settings = [
        ("field", "customertypecode"),
        ("values", "Organization:3, Person:1"),
    ];
    let batch = rows(r#"[{"customertypecode": "Organization"}, {"customertypecode": "Robot"}]"#);
    let call = plugin
        .transform(&context("customers", &settings), &batch)
        .expect("runs");
    assert_eq!(
        field(&call.result, &batch, 0, "customertypecode"),
        json!({"choice": 3})
    );
    assert!(matches!(&call.result.outcomes[1], Outcome::Fail(m) if m.contains("value `Robot`")));

    let mut back = context("customers", &settings);
    back.direction = dualwrite::plugin::Direction::RightToLeft;
    let batch = rows(r#"[{"customertypecode": {"choice": 1}}]"#);
    let call = plugin.transform(&back, &batch).expect("runs");
    assert_eq!(
        field(&call.result, &batch, 0, "customertypecode"),
        json!("Person")
    );
}

#[test]
fn phone_normalize() {
    let plugin = load(PHONE_NORMALIZE, PluginLimits::default());
    let batch = rows(
        r#"[{"telephone1": "(206) 709-3400"}, {"telephone1": "+49 30 901820"}, {"telephone1": "12"}, {"telephone1": ""}]"#,
    );
    let call = plugin
        .transform(&context("contacts", &[]), &batch)
        .expect("runs");
    assert_eq!(
        field(&call.result, &batch, 0, "telephone1"),
        json!("+12067093400")
    );
    assert_eq!(
        field(&call.result, &batch, 1, "telephone1"),
        json!("+4930901820")
    );
    assert!(
        matches!(&call.result.outcomes[2], Outcome::Fail(m) if m.contains("`12` is not a valid phone number for region US"))
    );
    assert_eq!(call.result.outcomes[3], Outcome::Unchanged);
}

#[test]
fn a_warm_instance_serves_the_next_batch_and_a_fresh_one_gives_the_same_result() {
    let plugin = load(
        PARTY_NAME_SPLIT,
        PluginLimits {
            calls_per_instance: 2,
            ..PluginLimits::default()
        },
    );
    let batch = rows(r#"[{"fullname": "Ada Lovelace"}]"#);
    let ctx = context("contacts", &[]);
    // The first batch first asks the plugin which fields it reads, on a
    // fresh instance, then runs on that instance: its second call.
    let first = plugin.transform(&ctx, &batch).expect("runs");
    let second = plugin.transform(&ctx, &batch).expect("runs");
    let third = plugin.transform(&ctx, &batch).expect("runs");
    assert!(
        !first.stats.fresh_instance,
        "the batch ran on the instance that answered `reads`"
    );
    assert!(
        second.stats.fresh_instance,
        "an instance is replaced after calls_per_instance calls"
    );
    assert!(
        !third.stats.fresh_instance,
        "the second call's instance was kept warm"
    );
    assert_eq!(first.result, second.result);
    assert_eq!(first.result, third.result);
}

#[test]
fn a_plugin_is_sent_only_the_fields_it_reads_and_its_changes_land_in_the_rows() {
    let plugin = load(CURRENCY_PRECISION, PluginLimits::default());
    let ctx = context(
        "customers",
        &[("fields", "CREDITLIMIT"), ("rounding", "half-up")],
    );
    let reads = plugin
        .reads(Interface::Transform, &ctx)
        .expect("answers")
        .result;
    assert_eq!(reads, Some(vec!["CREDITLIMIT".to_owned()]));
    let mut flat = Rows::from_batch(&rows(
        r#"[{"NAME": "Contoso", "CREDITLIMIT": {"decimal": "1.005"}}, {"NAME": "Fabrikam", "CREDITLIMIT": {"decimal": "2.50"}}]"#,
    ));
    let sent = flat.wire_batch(&[0, 1], &flat.columns_for(reads.as_deref()));
    assert_eq!(sent.fields, ["CREDITLIMIT"], "only the field it reads");
    assert!(sent.text.is_empty(), "no other field's text is sent");
    let verdicts = plugin
        .transform_rows(&ctx, &mut flat, &[0, 1], reads.as_deref())
        .expect("runs")
        .result;
    assert_eq!(verdicts, [Verdict::Keep, Verdict::Keep]);
    assert_eq!(
        flat.get(0, 1).map(dualwrite::plugin::owned_value),
        Some(Value::Decimal(rust_decimal::Decimal::new(101, 2).into()))
    );
    assert!(flat.is_changed(0, 1));
    assert!(!flat.is_changed(1, 1), "2.50 already has two places");
    assert_eq!(flat.get(0, 0), Some(ValueRef::Text("Contoso")));
    assert!(!flat.row_changed(1));
}
