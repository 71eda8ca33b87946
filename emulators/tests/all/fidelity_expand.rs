//! `$expand` on the Dataverse Web API as "Join tables using OData" shows
//! it (<https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/join-tables>):
//! single- and collection-valued navigation properties, their options, the
//! form of `@odata.context`, paging of expanded collections, references,
//! and the documented refusals.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, error_message, send_json};

async fn create(h: &Harness, set: &str, body: Value) -> String {
    let response = h
        .request(Method::POST, set)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204, "{set}: {body}");
    let entity = response.headers()["odata-entityid"]
        .to_str()
        .expect("text")
        .to_string();
    entity
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .expect("id in OData-EntityId")
        .to_string()
}

/// Two accounts: `Litware` with a primary contact and three contacts,
/// `Adventure Works` with neither. Returns (litware, [contacts]).
async fn accounts_with_contacts(h: &Harness) -> (String, Vec<String>) {
    let litware = create(h, "accounts", json!({"name": "Litware"})).await;
    let mut contacts = Vec::new();
    for (first, last) in [
        ("Susanna", "Stubberod"),
        ("Nancy", "Anderson"),
        ("Skip", "Me"),
    ] {
        let id = create(
            h,
            "contacts",
            json!({
                "firstname": first, "lastname": last, "fullname": format!("{first} {last}"),
                "parentcustomerid_account@odata.bind": format!("/accounts({litware})"),
            }),
        )
        .await;
        contacts.push(id);
    }
    let response = h
        .request(Method::PATCH, &format!("accounts({litware})"))
        .json(&json!({"primarycontactid@odata.bind": format!("/contacts({})", contacts[0])}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    create(h, "accounts", json!({"name": "Adventure Works"})).await;
    (litware, contacts)
}

async fn get_paged(h: &Harness, path: &str, page: usize) -> (reqwest::header::HeaderMap, Value) {
    let response = h
        .request(Method::GET, path)
        .header("Prefer", format!("odata.maxpagesize={page}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200, "{path}");
    let headers = response.headers().clone();
    (headers, response.json().await.expect("json"))
}

/// "Limit columns with $select" and "Single $expand on collection-valued
/// navigation properties": the context lists the columns then each
/// expansion; a single-valued row carries its key and no `@odata.etag`; the
/// expanded collection is not paged, its rows keep `@odata.etag` and the
/// lookup back to the account, and `<property>@odata.nextLink` reads the
/// same rows again.
#[tokio::test]
async fn a_collection_read_joins_single_and_collection_valued_properties() {
    let h = Harness::dataverse().await;
    let root = h.emulator.service_url();
    let (litware, contacts) = accounts_with_contacts(&h).await;
    let (headers, body) = get_paged(
        &h,
        "accounts?$select=name&$orderby=name desc&$expand=primarycontactid($select=fullname),contact_customer_accounts($select=fullname)",
        1,
    )
    .await;
    assert_eq!(headers["preference-applied"], "odata.maxpagesize=1");
    assert_eq!(
        body["@odata.context"],
        format!(
            "{root}/$metadata#accounts(name,primarycontactid(fullname),contact_customer_accounts(fullname))"
        )
    );
    assert!(
        body["@odata.nextLink"].is_string(),
        "the accounts are paged: {body}"
    );
    let row = &body["value"][0];
    assert_eq!(row["accountid"], litware.as_str(), "{body}");
    assert_eq!(
        row["primarycontactid"],
        json!({"fullname": "Susanna Stubberod", "contactid": contacts[0]})
    );
    let expanded = row["contact_customer_accounts"].as_array().expect("array");
    assert_eq!(expanded.len(), 3, "no paging applies to the expanded rows");
    for contact in expanded {
        assert!(contact["@odata.etag"].is_string(), "{contact}");
        assert_eq!(contact["_parentcustomerid_account_value"], litware.as_str());
        assert!(contact.get("lastname").is_none(), "only what $select names");
    }
    let link = row["contact_customer_accounts@odata.nextLink"]
        .as_str()
        .expect("link");
    assert_eq!(
        link,
        format!("{root}/accounts({litware})/contact_customer_accounts?$select=fullname")
    );
    let (status, again) = h
        .get_json(link.strip_prefix(&format!("{root}/")).expect("root"))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["value"].as_array().expect("value").len(), 3);
    assert_eq!(
        again["@odata.context"],
        format!("{root}/$metadata#contacts(fullname)")
    );

    let (_, next) = h
        .get_json(
            body["@odata.nextLink"]
                .as_str()
                .and_then(|l| l.strip_prefix(&format!("{root}/")))
                .expect("next link"),
        )
        .await;
    let other = &next["value"][0];
    assert_eq!(other["name"], "Adventure Works", "{next}");
    assert_eq!(other["primarycontactid"], Value::Null);
    assert_eq!(other["contact_customer_accounts"], json!([]));
    h.emulator.shutdown().await.expect("shutdown");
}

/// `$filter`, `$orderby` and `$top` limit an expanded collection.
#[tokio::test]
async fn an_expanded_collection_takes_filter_orderby_and_top() {
    let h = Harness::dataverse().await;
    let (litware, _) = accounts_with_contacts(&h).await;
    let (status, row) = h
        .get_json(&format!(
            "accounts({litware})?$select=name&$expand=contact_customer_accounts($select=fullname;$filter=firstname ne 'Skip';$orderby=fullname desc;$top=5)"
        ))
        .await;
    assert_eq!(status, 200, "{row}");
    let names: Vec<&str> = row["contact_customer_accounts"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["fullname"].as_str())
        .collect();
    assert_eq!(names, ["Susanna Stubberod", "Nancy Anderson"]);
    let (_, row) = h
        .get_json(&format!(
            "accounts({litware})?$expand=contact_customer_accounts($select=fullname;$orderby=fullname;$top=1)"
        ))
        .await;
    assert_eq!(
        row["contact_customer_accounts"][0]["fullname"], "Nancy Anderson",
        "{row}"
    );
    assert_eq!(
        row["contact_customer_accounts"].as_array().map(Vec::len),
        Some(1)
    );
    h.emulator.shutdown().await.expect("shutdown");
}

/// One row ("Retrieve a table row using the Web API", and the create
/// page's representation): `…/$entity` after the same list, every expanded
/// row with its `@odata.etag`, no link; a navigation property read takes
/// `$select` (`$metadata#contacts(fullname)/$entity`).
#[tokio::test]
async fn one_row_joins_its_related_rows() {
    let h = Harness::dataverse().await;
    let root = h.emulator.service_url();
    let (litware, contacts) = accounts_with_contacts(&h).await;
    let (status, row) = h
        .get_json(&format!(
            "accounts({litware})?$select=name&$expand=primarycontactid($select=fullname),contact_customer_accounts($select=fullname)"
        ))
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(
        row["@odata.context"],
        format!(
            "{root}/$metadata#accounts(name,primarycontactid(fullname),contact_customer_accounts(fullname))/$entity"
        )
    );
    assert!(row["primarycontactid"]["@odata.etag"].is_string(), "{row}");
    assert_eq!(row["primarycontactid"]["contactid"], contacts[0].as_str());
    assert_eq!(
        row["contact_customer_accounts"].as_array().map(Vec::len),
        Some(3)
    );
    assert!(
        row.get("contact_customer_accounts@odata.nextLink")
            .is_none()
    );

    let (_, contact) = h
        .get_json(&format!(
            "accounts({litware})/primarycontactid?$select=fullname"
        ))
        .await;
    assert_eq!(
        contact["@odata.context"],
        format!("{root}/$metadata#contacts(fullname)/$entity")
    );
    assert_eq!(contact["fullname"], "Susanna Stubberod");
    assert!(contact.get("lastname").is_none(), "{contact}");
    h.emulator.shutdown().await.expect("shutdown");
}

/// "Return references": `primarycontactid/$ref` gives the lookup's value
/// and an `@odata.id`; the context names `primarycontactid/$ref()`.
#[tokio::test]
async fn single_valued_properties_expand_to_references() {
    let h = Harness::dataverse().await;
    let root = h.emulator.service_url();
    let (_, contacts) = accounts_with_contacts(&h).await;
    let (_, body) = h
        .get_json("accounts?$select=name&$expand=primarycontactid/$ref&$orderby=name desc")
        .await;
    assert_eq!(
        body["@odata.context"],
        format!("{root}/$metadata#accounts(name,primarycontactid,primarycontactid/$ref())")
    );
    let litware = &body["value"][0];
    assert_eq!(
        litware["_primarycontactid_value"],
        contacts[0].as_str(),
        "{body}"
    );
    assert_eq!(
        litware["primarycontactid"],
        json!({"@odata.id": format!("{root}/contacts({})", contacts[0])})
    );
    assert_eq!(body["value"][1]["primarycontactid"], Value::Null);
    h.emulator.shutdown().await.expect("shutdown");
}

/// "Nested $expand on collection-valued navigation properties": with a
/// nested `$expand`, `Prefer: odata.maxpagesize` pages each expanded
/// collection, whose link carries where the next page starts; the nested
/// single-valued row (`owninguser`, a systemuser) carries its key.
#[tokio::test]
async fn a_nested_expand_pages_the_expanded_collections() {
    let h = Harness::dataverse().await;
    let root = h.emulator.service_url();
    let (litware, _) = accounts_with_contacts(&h).await;
    let (_, me) = h.get_json("WhoAmI").await;
    let (_, body) = get_paged(
        &h,
        &format!(
            "accounts?$select=name&$filter=accountid eq {litware}&$expand=contact_customer_accounts($select=fullname;$expand=owninguser($select=fullname))"
        ),
        2,
    )
    .await;
    assert_eq!(
        body["@odata.context"],
        format!(
            "{root}/$metadata#accounts(name,contact_customer_accounts(fullname,owninguser(fullname)))"
        )
    );
    let row = &body["value"][0];
    let expanded = row["contact_customer_accounts"].as_array().expect("array");
    assert_eq!(expanded.len(), 2, "paged to 2: {row}");
    assert!(expanded[0].get("@odata.etag").is_none());
    assert_eq!(expanded[0]["owninguser"]["systemuserid"], me["UserId"]);
    let link = row["contact_customer_accounts@odata.nextLink"]
        .as_str()
        .expect("link");
    assert!(link.contains("$skiptoken="), "{link}");
    let (status, rest) = h
        .get_json(link.strip_prefix(&format!("{root}/")).expect("root"))
        .await;
    assert_eq!(status, 200, "{rest}");
    let rest = rest["value"].as_array().expect("value");
    assert_eq!(rest.len(), 1, "the third contact: {rest:?}");
    assert_eq!(rest[0]["owninguser"]["systemuserid"], me["UserId"]);
    h.emulator.shutdown().await.expect("shutdown");
}

/// The refusals: an unknown navigation property, a column, `$ref` on a
/// collection, `$top`/`$orderby` on a lookup or with a nested `$expand`,
/// the options the Web API does not take in `$expand`.
#[tokio::test]
async fn expansions_the_service_refuses_are_refused() {
    let h = Harness::dataverse().await;
    for (query, needle) in [
        (
            "$expand=nosuchnav",
            "Could not find a property named 'nosuchnav' on type 'Microsoft.Dynamics.CRM.account'.",
        ),
        ("$expand=name", "is not a navigation property"),
        (
            "$expand=contact_customer_accounts/$ref",
            "Expand with $ref is only supported on lookup type navigation property.",
        ),
        (
            "$expand=primarycontactid($top=1)",
            "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship or nested one-to-many relationship.",
        ),
        (
            "$expand=contact_customer_accounts($orderby=fullname;$expand=owninguser)",
            "Only $select and $filter clause",
        ),
        (
            "$expand=contact_customer_accounts($count=true)",
            "$count is not supported",
        ),
        (
            "$expand=primarycontactid($select=nosuchcolumn)",
            "'nosuchcolumn'",
        ),
    ] {
        let (status, body) = send_json(h.request(Method::GET, &format!("accounts?{query}"))).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = error_message(&body, "0x80060888");
        assert!(message.contains(needle), "{query}: {message}");
    }
    h.emulator.shutdown().await.expect("shutdown");
}

/// "Associate table rows on create" and "Create with data returned"
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/webapi/create-entity-web-api#associate-table-rows-on-create>):
/// a collection-valued `@odata.bind` lists existing rows the new row gets,
/// and `$select`/`$expand` shape the representation. On update only
/// single-valued properties bind ("Associate table rows on update"), so a
/// collection there is refused; a missing row fails the whole create.
#[tokio::test]
async fn a_create_associates_existing_rows_of_a_collection() {
    let h = Harness::dataverse().await;
    let root = h.emulator.service_url();
    let primary = create(&h, "contacts", json!({"fullname": "Yvonne McKay"})).await;
    let first = create(&h, "contacts", json!({"fullname": "Task 1"})).await;
    let second = create(&h, "contacts", json!({"fullname": "Task 2"})).await;
    let response = h
        .request(
            Method::POST,
            "accounts?$select=name&$expand=primarycontactid($select=fullname),contact_customer_accounts($select=fullname)",
        )
        .header("Prefer", "return=representation")
        .json(&json!({
            "name": "Sample Account",
            "primarycontactid@odata.bind": format!("/contacts({primary})"),
            "contact_customer_accounts@odata.bind": [format!("/contacts({first})"), format!("contacts({second})")],
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["preference-applied"],
        "return=representation"
    );
    let row: Value = response.json().await.expect("json");
    assert_eq!(
        row["@odata.context"],
        format!(
            "{root}/$metadata#accounts(name,primarycontactid(fullname),contact_customer_accounts(fullname))/$entity"
        )
    );
    assert_eq!(
        row["primarycontactid"]["contactid"],
        primary.as_str(),
        "{row}"
    );
    assert!(row["primarycontactid"]["@odata.etag"].is_string());
    let mut members: Vec<&str> = row["contact_customer_accounts"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["contactid"].as_str())
        .collect();
    members.sort_unstable();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(members, expected);
    let account = row["accountid"].as_str().expect("id").to_string();
    let (_, contact) = h.get_json(&format!("contacts({first})")).await;
    assert_eq!(contact["_parentcustomerid_account_value"], account.as_str());

    let (status, body) = send_json(
        h.request(Method::PATCH, &format!("accounts({account})"))
            .json(
                &json!({"contact_customer_accounts@odata.bind": [format!("/contacts({primary})")]}),
            ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = error_message(&body, "0x80060888");
    assert!(message.contains("only when a row is created"), "{message}");

    let (status, body) = send_json(h.request(Method::POST, "accounts").json(&json!({
        "name": "Not an array",
        "contact_customer_accounts@odata.bind": format!("/contacts({primary})"),
    })))
    .await;
    assert_eq!(status, 400, "{body}");
    let missing = "00000000-0000-0000-0000-000000000042";
    let (status, body) = send_json(h.request(Method::POST, "accounts").json(&json!({
        "name": "Half associated",
        "contact_customer_accounts@odata.bind": [format!("/contacts({primary})"), format!("/contacts({missing})")],
    })))
    .await;
    assert_eq!(status, 404, "{body}");
    error_message(&body, "0x80040217");
    let (_, found) = h
        .get_json("accounts?$filter=name eq 'Half associated'")
        .await;
    assert_eq!(
        found["value"],
        json!([]),
        "nothing of a failed create stays"
    );
    let (_, contact) = h.get_json(&format!("contacts({primary})")).await;
    assert_eq!(contact["_parentcustomerid_account_value"], Value::Null);
    h.emulator.shutdown().await.expect("shutdown");
}
