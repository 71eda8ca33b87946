//! The `$filter` parser and evaluator, table-driven.

use dualwrite::odata::Filter;
use serde_json::{Map, Value, json};

fn row() -> Map<String, Value> {
    let Value::Object(m) = json!({
        "name": "Contoso Ltd",
        "accountnumber": "A-1",
        "creditlimit": 5000.5,
        "numberofemployees": 42,
        "donotemail": false,
        "msdyn_onetimecustomer": true,
        "accountid": "2E451D42-0D87-E711-80E5-00155DB19E6D",
        "createdon": "2024-03-01T10:00:00Z",
        "birthday": "1990-05-17",
        "IsOneTimeCustomer": "Yes",
        "description": null,
        "address": {"city": "Seattle"},
        "quote": "O'Brien",
    }) else {
        unreachable!("literal object")
    };
    m
}

fn check(filter: &str, expected: bool) {
    let parsed = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    assert_eq!(parsed.matches(&row()), expected, "{filter}");
}

#[test]
fn comparisons_and_logic() {
    let cases = [
        ("name eq 'Contoso Ltd'", true),
        ("name eq 'contoso ltd'", true),
        ("name ne 'Contoso Ltd'", false),
        ("creditlimit gt 5000", true),
        ("creditlimit ge 5000.5", true),
        ("creditlimit lt 5000.5", false),
        ("numberofemployees le 42", true),
        ("numberofemployees eq 42.0", true),
        ("numberofemployees gt -1", true),
        ("numberofemployees eq 4.2e1", true),
        ("donotemail eq false", true),
        ("msdyn_onetimecustomer", true),
        ("not msdyn_onetimecustomer", false),
        ("name eq 'x' or accountnumber eq 'A-1'", true),
        (
            "name eq 'x' or accountnumber eq 'A-1' and creditlimit lt 0",
            false,
        ),
        (
            "(name eq 'x' or accountnumber eq 'A-1') and creditlimit gt 0",
            true,
        ),
        ("not (name eq 'x')", true),
        ("description eq null", true),
        ("description ne null", false),
        ("missingfield eq null", true),
        ("name ne null", true),
        ("startswith(name, 'cont')", true),
        ("endswith(name,'Ltd')", true),
        ("contains(name, 'SO L')", true),
        ("contains(name, 'xyz')", false),
        ("not contains(name, 'xyz')", true),
        ("accountid eq 2e451d42-0d87-e711-80e5-00155db19e6d", true),
        ("createdon gt 2024-01-01T00:00:00Z", true),
        ("createdon eq 2024-03-01T11:00:00+01:00", true),
        ("createdon lt 2024-03-01T11:00:00+01:00", false),
        ("createdon eq 2024-03-01T10:00:00Z", true),
        ("birthday eq 1990-05-17", true),
        ("birthday lt 1990-01-01", false),
        (
            "IsOneTimeCustomer eq Microsoft.Dynamics.DataEntities.NoYes'Yes'",
            true,
        ),
        (
            "IsOneTimeCustomer eq Microsoft.Dynamics.DataEntities.NoYes'No'",
            false,
        ),
        ("address/city eq 'Seattle'", true),
        ("quote eq 'O''Brien'", true),
        ("name eq 42", false),
        ("name ne 42", true),
        ("creditlimit eq 'abc'", false),
        ("'Contoso Ltd' eq name", true),
        ("5001 gt creditlimit", true),
        ("name EQ 'Contoso Ltd' AND numberofemployees Gt 1", true),
    ];
    for (filter, expected) in cases {
        check(filter, expected);
    }
}

#[test]
fn errors_name_a_position() {
    let cases = [
        ("name eq", 7),
        ("name eq 'open", 8),
        ("(name eq 'x'", 12),
        ("name eq 'x' accountnumber", 12),
        ("length(name) eq 3", 0),
        ("name eq 2024-13-45", 8),
        ("name # 'x'", 5),
        ("", 0),
        ("name eq and", 8),
        ("startswith(name 'x')", 16),
    ];
    for (filter, position) in cases {
        let error = Filter::parse(filter).expect_err(filter);
        assert_eq!(error.position, position, "{filter}: {error}");
        assert!(!error.message.is_empty());
    }
}

#[test]
fn field_names_are_listed_in_order() {
    let filter =
        Filter::parse("a eq 1 and (startswith(b, 'x') or not c) and 'k' eq d").expect("parses");
    assert_eq!(filter.field_names(), ["a", "b", "c", "d"]);
    assert_eq!(
        filter.as_str(),
        "a eq 1 and (startswith(b, 'x') or not c) and 'k' eq d"
    );
}

#[test]
fn hostile_input_does_not_panic() {
    let inputs = [
        "((((((",
        "')",
        "é eq 'é'",
        "a eq -",
        "-",
        "a eq 1e999999",
        "a/",
        "@",
        "a eq ''''",
        "x eq 00000000-0000-0000-0000-00000000000g",
    ];
    for input in inputs {
        let _ = Filter::parse(input);
    }
    let nested = format!("{}a eq 1{}", "(".repeat(200), ")".repeat(200));
    assert!(
        !Filter::parse(&nested)
            .expect("nested parses")
            .matches(&Map::new())
    );
    let hostile = format!("{}a eq 1", "(".repeat(100_000));
    let error = Filter::parse(&hostile).expect_err("too deep");
    assert!(error.message.contains("deeper"), "{error}");
    let nots = format!("{}a", "not ".repeat(100_000));
    assert!(Filter::parse(&nots).is_err());
}
