//! The finance and operations OData service as "Open Data Protocol
//! (OData)" describes it
//! (<https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata>):
//! the service document, `$filter` wildcards and enums, `$count`, paging,
//! `cross-company=true`, `$top`/`$skip`/`$orderby`/`$select`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, send_json};

async fn customers(h: &Harness) {
    for (company, account, name, mandatory) in [
        ("usmf", "C-1", "Contoso Retail Seattle", "Yes"),
        ("usmf", "C-2", "Fabrikam Retail", "No"),
        ("usmf", "C-3", "Northwind Traders", "Yes"),
        ("usrt", "C-4", "Contoso Retail Lyon", "No"),
    ] {
        let (status, body) = send_json(h.request(Method::POST, "CustomersV3").json(&json!({
            "dataAreaId": company,
            "CustomerAccount": account,
            "OrganizationName": name,
            "CreditLimitIsMandatory": mandatory,
        })))
        .await;
        assert_eq!(status, 201, "{body}");
    }
}

fn accounts(body: &Value) -> Vec<String> {
    body["value"]
        .as_array()
        .unwrap_or_else(|| panic!("value in {body}"))
        .iter()
        .map(|r| {
            r["CustomerAccount"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn the_service_document_lists_the_entity_sets() {
    let h = Harness::finops().await;
    let (status, body) = h.get_json("").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["@odata.context"],
        format!("{}/$metadata", h.emulator.service_url())
    );
    let sets = body["value"].as_array().expect("value");
    assert!(
        sets.contains(&json!({"name": "CustomersV3", "kind": "EntitySet", "url": "CustomersV3"})),
        "{body}"
    );
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn filters_take_wildcards_and_enum_literals() {
    let h = Harness::finops().await;
    customers(&h).await;
    for (filter, expected) in [
        ("OrganizationName eq '*retail*'", vec!["C-1", "C-2"]),
        ("OrganizationName eq 'contoso*'", vec!["C-1"]),
        ("OrganizationName eq '*Traders'", vec!["C-3"]),
        ("OrganizationName ne '*retail*'", vec!["C-3"]),
        (
            "CreditLimitIsMandatory eq Microsoft.Dynamics.DataEntities.NoYes'Yes'",
            vec!["C-1", "C-3"],
        ),
        (
            "OrganizationName eq '*retail*' and CreditLimitIsMandatory eq Microsoft.Dynamics.DataEntities.NoYes'No'",
            vec!["C-2"],
        ),
    ] {
        let (status, body) = h
            .get_json(&format!(
                "CustomersV3?$filter={filter}&$orderby=CustomerAccount"
            ))
            .await;
        assert_eq!(status, 200, "{filter}: {body}");
        assert_eq!(accounts(&body), expected, "{filter}");
    }
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn count_top_skip_orderby_select_and_cross_company() {
    let h = Harness::finops().await;
    customers(&h).await;
    let count = |path: &str| {
        let request = h.request(Method::GET, path);
        async move {
            let response = request.send().await.expect("sent");
            assert_eq!(response.status(), 200);
            response.text().await.expect("text")
        }
    };
    assert_eq!(count("CustomersV3/$count").await, "3");
    assert_eq!(count("CustomersV3/$count?cross-company=true").await, "4");
    assert_eq!(
        count("CustomersV3/$count?cross-company=true&$filter=OrganizationName eq '*retail*'").await,
        "3"
    );

    let (_, body) = h
        .get_json("CustomersV3?$count=true&$top=1&$skip=1&$orderby=CustomerAccount desc&$select=CustomerAccount")
        .await;
    assert_eq!(body["@odata.count"], 3);
    assert_eq!(accounts(&body), vec!["C-2"]);
    let row = body["value"][0].as_object().expect("row");
    assert!(!row.contains_key("OrganizationName"), "{body}");

    let (_, body) = h
        .get_json("CustomersV3?cross-company=true&$filter=dataAreaId eq 'usrt'")
        .await;
    assert_eq!(accounts(&body), vec!["C-4"]);
    let (status, _) = h
        .get_json("CustomersV3(dataAreaId='usrt',CustomerAccount='C-4')")
        .await;
    assert_eq!(status, 404, "another company needs cross-company=true");
    let (status, _) = h
        .get_json("CustomersV3(dataAreaId='usrt',CustomerAccount='C-4')?cross-company=true")
        .await;
    assert_eq!(status, 200);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn server_driven_paging_follows_odata_maxpagesize() {
    let h = Harness::finops().await;
    customers(&h).await;
    let mut url = format!(
        "{}/CustomersV3?cross-company=true&$orderby=CustomerAccount",
        h.emulator.service_url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = h
            .client
            .get(&url)
            .bearer_auth(&h.token)
            .header("Prefer", "odata.maxpagesize=3")
            .send()
            .await
            .expect("sent");
        assert_eq!(
            response.headers()["preference-applied"],
            "odata.maxpagesize=3"
        );
        let body: Value = response.json().await.expect("json");
        pages += 1;
        seen.extend(accounts(&body));
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, vec!["C-1", "C-2", "C-3", "C-4"]);
    let (_, body) = h.get_json("CustomersV3").await;
    assert!(body.get("@odata.nextLink").is_none(), "{body}");
    h.emulator.shutdown().await.expect("shutdown");
}
