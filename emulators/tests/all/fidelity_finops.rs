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

/// The headers of each answer, as OData 4.0 Part 1 specifies them
/// (<https://docs.oasis-open.org/odata/odata/v4.0/errata03/os/complete/part1-protocol/odata-v4.0-errata03-os-part1-protocol-complete.html>):
/// `OData-Version: 4.0` and `application/json; odata.metadata=minimal`
/// everywhere; a create answers `201` with `Location` (§11.4.2), or `204`
/// with `OData-EntityId` for `return=minimal` (§8.3.3); a read of one row
/// has the `ETag` of its `@odata.etag` (§8.3.1) and takes `$select`
/// (OData JSON 4.0 §10.9: `CustomersV3(…)/$entity`); an update answers
/// `204`, or `200` with the row for `return=representation`;
/// `Preference-Applied` only for a preference applied (§8.3.4).
#[tokio::test]
async fn responses_carry_the_headers_odata_specifies() {
    let h = Harness::finops().await;
    let root = h.emulator.service_url();
    let response = h
        .request(Method::POST, "CustomersV3")
        .json(
            &json!({"dataAreaId": "usmf", "CustomerAccount": "H-1", "OrganizationName": "Headers"}),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let headers = response.headers().clone();
    assert_eq!(headers["odata-version"], "4.0");
    assert_eq!(
        headers["content-type"],
        "application/json; odata.metadata=minimal"
    );
    let url = format!("{root}/CustomersV3(dataAreaId='usmf',CustomerAccount='H-1')");
    assert_eq!(headers["location"], url.as_str());
    assert!(!headers.contains_key("preference-applied"), "{headers:?}");
    assert!(!headers.contains_key("odata-entityid"), "{headers:?}");
    let created: Value = response.json().await.expect("json");
    assert_eq!(
        headers["etag"],
        created["@odata.etag"].as_str().expect("etag")
    );

    let response = h
        .request(Method::POST, "CustomersV3")
        .header("Prefer", "return=minimal")
        .json(&json!({"dataAreaId": "usmf", "CustomerAccount": "H-2"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let minimal = format!("{root}/CustomersV3(dataAreaId='usmf',CustomerAccount='H-2')");
    assert_eq!(response.headers()["odata-entityid"], minimal.as_str());
    assert_eq!(response.headers()["location"], minimal.as_str());
    assert_eq!(response.headers()["preference-applied"], "return=minimal");

    let path = "CustomersV3(dataAreaId='usmf',CustomerAccount='H-1')";
    let response = h
        .request(
            Method::GET,
            &format!("{path}?$select=CustomerAccount,OrganizationName"),
        )
        .header("Prefer", "odata.maxpagesize=5")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        !response.headers().contains_key("preference-applied"),
        "paging does not apply to one row"
    );
    let row: Value = response.json().await.expect("json");
    assert_eq!(row["@odata.etag"], etag.as_str());
    assert_eq!(
        row["@odata.context"],
        format!("{root}/$metadata#CustomersV3(CustomerAccount,OrganizationName)/$entity")
    );
    assert!(row.get("dataAreaId").is_none(), "{row}");

    let response = h
        .request(Method::PATCH, path)
        .json(&json!({"OrganizationName": "Plain"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    assert!(!response.headers().contains_key("preference-applied"));
    let response = h
        .request(Method::PATCH, path)
        .header("Prefer", "return=representation")
        .json(&json!({"OrganizationName": "Shown"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["preference-applied"],
        "return=representation"
    );
    let row: Value = response.json().await.expect("json");
    assert_eq!(row["OrganizationName"], "Shown");

    let response = h
        .request(Method::GET, "CustomersV3?$select=CustomerAccount")
        .send()
        .await
        .expect("sent");
    assert!(!response.headers().contains_key("preference-applied"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["@odata.context"],
        format!("{root}/$metadata#CustomersV3(CustomerAccount)")
    );
    h.emulator.shutdown().await.expect("shutdown");
}

/// The page supports `$expand` of navigation properties ("only first-level
/// expansion"), but documents none for these entities: the emulator's
/// CSDL declares none, and `$expand` is answered as OData answers a name
/// that is no navigation property.
#[tokio::test]
async fn expand_names_no_navigation_property_of_these_entities() {
    let h = Harness::finops().await;
    customers(&h).await;
    for (path, needle) in [
        (
            "CustomersV3?$expand=Orders",
            "Could not find a property named 'Orders' on type 'Microsoft.Dynamics.DataEntities.CustomersV3'.",
        ),
        (
            "CustomersV3?$expand=OrganizationName",
            "Property 'OrganizationName' on type 'Microsoft.Dynamics.DataEntities.CustomersV3' is not a navigation property or complex property. Only navigation properties can be expanded.",
        ),
        (
            "CustomersV3(dataAreaId='usmf',CustomerAccount='C-1')?$expand=Orders($select=Id)",
            "Could not find a property named 'Orders'",
        ),
        ("CustomersV3/$count?$expand=Orders", "'Orders'"),
    ] {
        let (status, body) = send_json(h.request(Method::GET, path)).await;
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{path}: {message}");
    }
    let response = h
        .request(Method::GET, "$metadata")
        .send()
        .await
        .expect("sent");
    let csdl = response.text().await.expect("text");
    assert!(
        !csdl.contains("NavigationProperty"),
        "no navigation declared"
    );
    h.emulator.shutdown().await.expect("shutdown");
}
