use super::*;

const KNOWN: Known<'static> = Known {
    maps: &["customers", "vendors"],
    systems: &["finops", "dataverse"],
};

fn spec(condition: &str) -> RuleSpec {
    RuleSpec {
        name: "r".into(),
        condition: condition.into(),
        ..RuleSpec::default()
    }
}

fn problems(spec: &RuleSpec) -> Vec<(&'static str, String)> {
    match spec.check(KNOWN, RuleSource::Config) {
        Ok(rule) => panic!("{rule:?} was accepted"),
        Err(problems) => problems
            .into_iter()
            .map(|p| (p.field, p.to_string()))
            .collect(),
    }
}

#[test]
fn the_issues_example_checks_into_its_condition() {
    let rule = RuleSpec {
        map: Some("customers".into()),
        class: Some("application".into()),
        count: Some(10),
        within: Some("15m".into()),
        actions: vec!["notify".into(), "pause".into()],
        ..spec("errors")
    }
    .check(KNOWN, RuleSource::Api)
    .expect("valid");
    assert_eq!(
        rule.condition,
        Condition::Errors {
            class: Some(ErrorClass::Application),
            count: 10,
            within: Duration::from_secs(900),
        }
    );
    assert_eq!(
        rule.condition.to_string(),
        "10 application errors within 15m"
    );
    assert!(rule.notify && rule.pause);
    assert!(rule.watches("customers") && !rule.watches("vendors"));
}

#[test]
fn every_condition_checks_with_its_fields() {
    let cases = [
        (
            RuleSpec {
                above: Some(5),
                ..spec("backlog")
            },
            "more than 5 changes queued",
        ),
        (
            RuleSpec {
                older_than: Some("10m".into()),
                ..spec("oldest-change")
            },
            "a change waiting longer than 10m",
        ),
        (spec("plugin-quarantined"), "a plugin quarantined"),
        (
            RuleSpec {
                system: Some("finops".into()),
                for_: Some("5m".into()),
                ..spec("unreachable")
            },
            "system `finops` unreachable for longer than 5m",
        ),
        (spec("queue-full"), "a queue full"),
    ];
    for (spec, said) in cases {
        let rule = spec.check(KNOWN, RuleSource::Config).expect("valid");
        assert_eq!(rule.condition.to_string(), said);
        assert_eq!(rule.actions(), ["notify"], "notify by default");
    }
}

#[test]
fn a_missing_field_is_named_with_an_example() {
    let found = problems(&spec("errors"));
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, "count");
    assert!(
        found[0]
            .1
            .contains("alert rule `r`: condition `errors` needs `count`"),
        "{found:?}"
    );
    assert!(found[1].1.contains("set `within = \"15m\"`"), "{found:?}");
}

#[test]
fn a_field_of_another_condition_is_refused() {
    let found = problems(&RuleSpec {
        above: Some(3),
        within: Some("1m".into()),
        ..spec("queue-full")
    });
    let fields: Vec<_> = found.iter().map(|(f, _)| *f).collect();
    assert_eq!(fields, ["within", "above"], "{found:?}");
    assert!(
        found[0]
            .1
            .contains("does not apply to condition `queue-full`")
    );
}

#[test]
fn unknown_names_are_refused_with_what_is_known() {
    let found = problems(&RuleSpec {
        name: "has space".into(),
        map: Some("orders".into()),
        actions: vec!["page".into()],
        ..spec("surge")
    });
    let fields: Vec<_> = found.iter().map(|(f, _)| *f).collect();
    assert_eq!(fields, ["name", "map", "actions", "condition"], "{found:?}");
    assert!(found[1].1.contains("customers, vendors"), "{found:?}");
    assert!(
        found[3].1.contains("errors, backlog, oldest-change"),
        "{found:?}"
    );
    let found = problems(&RuleSpec {
        system: Some("crm".into()),
        for_: Some("1m".into()),
        ..spec("unreachable")
    });
    assert!(found[0].1.contains("finops, dataverse"), "{found:?}");
}

#[test]
fn bad_values_are_refused() {
    let found = problems(&RuleSpec {
        class: Some("fatal".into()),
        count: Some(0),
        within: Some("soon".into()),
        ..spec("errors")
    });
    let fields: Vec<_> = found.iter().map(|(f, _)| *f).collect();
    assert_eq!(fields, ["count", "within", "class"], "{found:?}");
    assert!(
        found[1].1.contains("\"soon\", not a duration above zero"),
        "{found:?}"
    );
    let found = problems(&RuleSpec {
        older_than: Some("0s".into()),
        ..spec("oldest-change")
    });
    assert_eq!(found[0].0, "older_than");
}

#[test]
fn a_spec_reads_back_from_toml_and_json() {
    let text = r#"
        name = "slow"
        condition = "unreachable"
        for = "5m"
        actions = ["pause"]
    "#;
    let spec: RuleSpec = toml::from_str(text).expect("parses");
    assert_eq!(spec.for_.as_deref(), Some("5m"));
    let json = serde_json::to_value(&spec).expect("serializes");
    assert_eq!(json["for"], "5m");
    assert_eq!(
        serde_json::from_value::<RuleSpec>(json).expect("reads back"),
        spec
    );
    let unknown = toml::from_str::<RuleSpec>("name = \"x\"\ncondition = \"errors\"\ncuont = 3");
    assert!(unknown.is_err_and(|e| e.to_string().contains("cuont")));
}
