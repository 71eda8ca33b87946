//! The Dataverse Web API as its pages show it, one behaviour per test:
//! single properties, navigation properties and `$ref`, the forms of
//! `@odata.context`, the headers, and the error codes. Each test names its
//! page; `docs/emulator-fidelity.md` lists them all.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Harness, send_json};

async fn create(h: &Harness, set: &str, body: Value) -> String {
    let response = h
        .request(Method::POST, set)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let entity = response.headers()["odata-entityid"]
        .to_str()
        .expect("text")
        .to_string();
    let id = entity
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .expect("id in OData-EntityId");
    id.to_string()
}

/// "Retrieve a single property value" and "Update a single property value",
/// "Delete a single property value":
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/retrieve-entity-using-web-api#retrieve-a-single-property-value>,
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api#update-a-single-property-value>
#[tokio::test]
async fn single_property_values_are_read_set_and_deleted() {
    let h = Harness::dataverse().await;
    let id = create(
        &h,
        "accounts",
        json!({"name": "Adventure Works", "description": "d", "creditlimit": 5}),
    )
    .await;

    let (status, body) = h.get_json(&format!("accounts({id})/name")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "@odata.context": format!("{}/$metadata#accounts({id})/name", h.emulator.service_url()),
            "value": "Adventure Works",
        })
    );
    let response = h
        .request(Method::GET, &format!("accounts({id})/creditlimit/$value"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("text")
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.expect("text"), "5");

    let response = h
        .request(Method::PUT, &format!("accounts({id})/name"))
        .json(&json!({"value": "Updated Sample Account Name"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    assert!(!response.headers().contains_key("odata-entityid"));
    let response = h
        .request(Method::DELETE, &format!("accounts({id})/description"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, row) = h.get_json(&format!("accounts({id})")).await;
    assert_eq!(row["name"], "Updated Sample Account Name");
    assert_eq!(row["description"], Value::Null);
    let response = h
        .request(Method::GET, &format!("accounts({id})/description"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204, "a null property has no content");

    let (status, body) = h.get_json(&format!("accounts({id})/nosuchcolumn")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "0x80060888");
    let missing = "00000000-0000-0000-0000-000000000009";
    let (status, body) = send_json(
        h.request(Method::PUT, &format!("accounts({missing})/name"))
            .json(&json!({"value": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "0x80040217");
    let (status, _) = h.get_json(&format!("accounts({missing})")).await;
    assert_eq!(status, 404, "a property write never creates the row");
    let (status, body) = send_json(
        h.request(Method::PUT, &format!("accounts({id})/name"))
            .json(&json!({"name": "no value member"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    h.emulator.shutdown().await.expect("shutdown");
}

/// "Associate and disassociate table rows using the Web API":
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/associate-disassociate-entities-using-web-api>
#[tokio::test]
async fn single_valued_navigation_properties_take_ref() {
    let h = Harness::dataverse().await;
    let root = h.emulator.service_url();
    let account = create(&h, "accounts", json!({"name": "Nav"})).await;
    let contact = create(&h, "contacts", json!({"lastname": "Primary"})).await;

    let response = h
        .request(
            Method::PUT,
            &format!("accounts({account})/primarycontactid/$ref"),
        )
        .json(&json!({"@odata.id": format!("{root}/contacts({contact})")}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, row) = h
        .get_json(&format!(
            "accounts({account})?$select=_primarycontactid_value"
        ))
        .await;
    assert_eq!(row["_primarycontactid_value"], contact.as_str());

    let (status, body) = h
        .get_json(&format!("accounts({account})/primarycontactid/$ref"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["@odata.id"], format!("{root}/contacts({contact})"));
    let (status, body) = h
        .get_json(&format!("accounts({account})/primarycontactid"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["@odata.context"],
        format!("{root}/$metadata#contacts/$entity")
    );
    assert_eq!(body["lastname"], "Primary");

    let response = h
        .request(
            Method::DELETE,
            &format!("accounts({account})/primarycontactid/$ref"),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, row) = h.get_json(&format!("accounts({account})")).await;
    assert_eq!(row["_primarycontactid_value"], Value::Null);

    let (status, body) = send_json(
        h.request(
            Method::PUT,
            &format!("accounts({account})/primarycontactid/$ref"),
        )
        .json(
            &json!({"@odata.id": format!("{root}/contacts(00000000-0000-0000-0000-000000000001)")}),
        ),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "0x80040217");
    h.emulator.shutdown().await.expect("shutdown");
}

/// Collection-valued navigation properties: associate with `POST …/$ref`,
/// disassociate with `DELETE …(id)/$ref` or `…/$ref?$id=`, read the
/// collection; same page as above.
#[tokio::test]
async fn collection_valued_navigation_properties_take_ref() {
    let h = Harness::dataverse().await;
    let root = h.emulator.service_url();
    let account = create(&h, "accounts", json!({"name": "Parent"})).await;
    let first = create(&h, "contacts", json!({"lastname": "First"})).await;
    let second = create(&h, "contacts", json!({"lastname": "Second"})).await;
    for contact in [&first, &second] {
        let response = h
            .request(
                Method::POST,
                &format!("accounts({account})/contact_customer_accounts/$ref"),
            )
            .json(&json!({"@odata.id": format!("{root}/contacts({contact})")}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 204);
    }
    let (status, body) = h
        .get_json(&format!("accounts({account})/contact_customer_accounts"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["@odata.context"], format!("{root}/$metadata#contacts"));
    assert_eq!(body["value"].as_array().expect("value").len(), 2);

    let response = h
        .request(
            Method::DELETE,
            &format!("accounts({account})/contact_customer_accounts({first})/$ref"),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let response = h
        .request(
            Method::DELETE,
            &format!(
                "accounts({account})/contact_customer_accounts/$ref?$id={root}/contacts({second})"
            ),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, body) = h
        .get_json(&format!(
            "accounts({account})/contact_customer_accounts/$ref"
        ))
        .await;
    assert_eq!(body["value"], json!([]));
    let (_, contact) = h.get_json(&format!("contacts({first})")).await;
    assert_eq!(contact["_parentcustomerid_account_value"], Value::Null);

    let (status, body) = h
        .get_json(&format!("accounts({account})/nosuchrelationship"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    h.emulator.shutdown().await.expect("shutdown");
}

/// The service document at the root (OData JSON Format 4.0 §5), which the
/// Web API answers at `[Organization URI]/api/data/v9.2/`.
#[tokio::test]
async fn the_service_document_lists_the_entity_sets() {
    let h = Harness::dataverse().await;
    let (status, body) = h.get_json("").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["@odata.context"],
        format!("{}/$metadata", h.emulator.service_url())
    );
    assert!(
        body["value"]
            .as_array()
            .expect("value")
            .contains(&json!({"name": "accounts", "kind": "EntitySet", "url": "accounts"})),
        "{body}"
    );
    h.emulator.shutdown().await.expect("shutdown");
}

/// Money columns carry `exchangerate` and `<column>_base`, computed from
/// the row's currency and refused when written (account reference:
/// <https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/account>).
#[tokio::test]
async fn money_columns_bring_exchangerate_and_base_values() {
    let h = Harness::dataverse().await;
    let euro = create(
        &h,
        "transactioncurrencies",
        json!({"isocurrencycode": "EUR", "currencyname": "Euro", "exchangerate": 0.8}),
    )
    .await;
    let account = create(
        &h,
        "accounts",
        json!({
            "name": "Money",
            "creditlimit": 1000,
            "revenue": 50,
            "transactioncurrencyid@odata.bind": format!("/transactioncurrencies({euro})"),
        }),
    )
    .await;
    let (_, row) = h.get_json(&format!("accounts({account})")).await;
    assert_eq!(row["exchangerate"], 0.8);
    assert_eq!(row["creditlimit_base"], 1250.0);
    assert_eq!(row["revenue_base"], 62.5);
    assert_eq!(row["aging30_base"], Value::Null);

    let plain = create(
        &h,
        "accounts",
        json!({"name": "No currency", "creditlimit": 7}),
    )
    .await;
    let (_, row) = h.get_json(&format!("accounts({plain})")).await;
    assert_eq!(row["exchangerate"], 1.0);
    assert_eq!(row["creditlimit_base"], 7.0);

    for body in [json!({"creditlimit_base": 1}), json!({"exchangerate": 2})] {
        let (status, error) = send_json(
            h.request(Method::PATCH, &format!("accounts({account})"))
                .json(&body),
        )
        .await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .expect("message")
                .contains("computed by the service"),
            "{error}"
        );
    }
    h.emulator.shutdown().await.expect("shutdown");
}

/// Headers as the create and update pages show them: `OData-EntityId` on a
/// `204`, no `ETag` on writes, `ETag` on a single read, `OData-Version:
/// 4.0` everywhere, `Preference-Applied` only for an applied preference;
/// an unknown property in a payload is `0x80048d19`
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/webapi/create-entity-web-api>,
/// <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api>).
#[tokio::test]
async fn headers_appear_where_documented() {
    let h = Harness::dataverse().await;
    let response = h
        .request(Method::POST, "accounts")
        .json(&json!({"name": "Headers"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let headers = response.headers();
    assert_eq!(headers["odata-version"], "4.0");
    assert!(headers.contains_key("odata-entityid"));
    assert!(!headers.contains_key("etag"), "{headers:?}");
    assert!(!headers.contains_key("preference-applied"), "{headers:?}");
    let entity = headers["odata-entityid"]
        .to_str()
        .expect("text")
        .to_string();
    let id = entity
        .rsplit_once('(')
        .expect("key")
        .1
        .trim_end_matches(')')
        .to_string();

    let response = h
        .request(Method::GET, &format!("accounts({id})?$select=name"))
        .send()
        .await
        .expect("sent");
    let etag = response.headers()["etag"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(!response.headers().contains_key("preference-applied"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["@odata.etag"], etag.as_str());
    assert_eq!(
        body["@odata.context"],
        format!(
            "{}/$metadata#accounts(name)/$entity",
            h.emulator.service_url()
        )
    );

    let response = h
        .request(Method::PATCH, &format!("accounts({id})"))
        .header("Prefer", "return=representation")
        .json(&json!({"name": "Again"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["preference-applied"],
        "return=representation"
    );

    let (status, body) = send_json(
        h.request(Method::PATCH, &format!("accounts({id})"))
            .json(&json!({"nosuchcolumn": 1})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "0x80048d19", "{body}");
    let (_, body) = h.get_json("accounts?$select=name,accountid").await;
    assert_eq!(
        body["@odata.context"],
        format!(
            "{}/$metadata#accounts(name,accountid)",
            h.emulator.service_url()
        )
    );
    h.emulator.shutdown().await.expect("shutdown");
}
