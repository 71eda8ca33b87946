//! The field and key string parser, table-driven.

use super::*;

fn text(value: &str) -> Literal {
    Literal::Text(value.to_string())
}

/// Parses `input` and compares the outcome, as a short rendering, with
/// `expected`: `left dir right [lookup key via map] [default] [map pairs]`,
/// or `error@position: message start`.
fn check(input: &str, expected: &str) {
    let got = match FieldMapping::parse(input) {
        Ok(mapping) => render(&mapping),
        Err(error) => format!("error@{}: {}", error.position, error.message),
    };
    assert!(
        got.starts_with(expected),
        "input {input:?}\n  got      {got}\n  expected {expected}"
    );
}

fn render(mapping: &FieldMapping) -> String {
    let mut out = format!(
        "{} {} {}",
        mapping.left.as_deref().unwrap_or("-"),
        mapping.direction.symbol(),
        mapping.right.as_deref().unwrap_or("-"),
    );
    if let Some(lookup) = &mapping.lookup {
        out += &format!(" lookup {}", lookup.key_field);
        if let Some(map) = &lookup.map {
            out += &format!(" via {map}");
        }
    }
    if let Some(default) = &mapping.default {
        out += &format!(" default {default}");
    }
    for (from, to) in &mapping.value_map {
        out += &format!(" {from}:{to}");
    }
    out
}

#[test]
fn parses_fields() {
    check("ORGANIZATIONNAME = name", "ORGANIZATIONNAME = name");
    check("CREDITLIMIT > creditlimit", "CREDITLIMIT > creditlimit");
    check("PARTYTYPE < partytype", "PARTYTYPE < partytype");
    check("  A   =   b  ", "A = b");
    check(
        "CUSTOMERGROUPID = msdyn_customergroupid.msdyn_groupid",
        "CUSTOMERGROUPID = msdyn_customergroupid lookup msdyn_groupid",
    );
    check(
        "GROUP = msdyn_group.msdyn_groupid via customer-groups",
        "GROUP = msdyn_group lookup msdyn_groupid via customer-groups",
    );
    check(
        "> customertypecode default 3",
        "- > customertypecode default 3",
    );
    check(
        "none > customertypecode default 3",
        "- > customertypecode default 3",
    );
    check(
        "PARTYTYPE < none default Organization",
        "PARTYTYPE < - default 'Organization'",
    );
    check(
        "PARTYTYPE < default 'Organization'",
        "PARTYTYPE < - default 'Organization'",
    );
    check(
        "> exchangerate default 1.0000000000",
        "- > exchangerate default 1.0000000000",
    );
    check(
        "> msdyn_sellable default True",
        "- > msdyn_sellable default true",
    );
    check(
        "NOTE = description default \"no note\"",
        "NOTE = description default 'no note'",
    );
    check(
        "PARTYTYPE = customertypecode map { Organization: 3, Person: 1 }",
        "PARTYTYPE = customertypecode 'Organization':3 'Person':1",
    );
    check(
        "ONHOLD = msdyn_onhold default no map { no: false, yes: true, }",
        "ONHOLD = msdyn_onhold default 'no' 'no':false 'yes':true",
    );
    check("A = b map {'a b': 'c d'}", "A = b 'a b':'c d'");
}

#[test]
fn reports_mistakes_with_a_position() {
    check("", "error@0: expected a direction");
    check(
        "A >> b",
        "error@2: expected a direction `=`, `>` or `<`, found `>>`",
    );
    check("A b", "error@2: expected a direction");
    check("A.b = c", "error@0: a lookup");
    check("A = b.", "error@4: `b.` is not a field name");
    check("A-x = b", "error@0: `A-x` is not a field name");
    check(
        "> customertypecode",
        "error@0: a mapping with one side only needs",
    );
    check("A > default 3", "error@0: with no right field");
    check("< b default 3", "error@0: with no left field");
    check("none = none", "error@0: name a field");
    check("A = b via groups", "error@4: `via MAP` needs a lookup");
    check("A = b default", "error@13: expected a value");
    check("A = b default 'open", "error@14: unterminated");
    check("A = b map { x 1 }", "error@14: expected `:`");
    check("A = b map { x: 1 y: 2 }", "error@17: expected `,` or `}`");
    check("A = b map {}", "error@12: a value map needs");
    check(
        "A = b map { x: 1 } default 2",
        "error@19: unexpected `default`",
    );
    check("A = b extra", "error@6: unexpected `extra`");
}

#[test]
fn keys_take_two_fields_and_no_constants() {
    let key = FieldMapping::parse_key("dataAreaId = msdyn_company.cdm_companycode")
        .expect("a key through a lookup parses");
    assert_eq!(key.left.as_deref(), Some("dataAreaId"));
    assert_eq!(key.right.as_deref(), Some("msdyn_company"));
    assert_eq!(
        key.lookup.map(|lookup| lookup.key_field).as_deref(),
        Some("cdm_companycode")
    );
    for bad in ["A = b default 1", "A = b map { x: 1 }", "> b default 1"] {
        assert!(FieldMapping::parse_key(bad).is_err(), "{bad} is not a key");
    }
}

#[test]
fn directions_say_which_side_they_write() {
    assert!(Direction::Both.writes_left() && Direction::Both.writes_right());
    assert!(Direction::LeftToRight.writes_right() && !Direction::LeftToRight.writes_left());
    assert!(Direction::RightToLeft.writes_left() && !Direction::RightToLeft.writes_right());
    assert_eq!(text("x"), Literal::Text("x".into()));
}
