//! Dataverse Web API: auth, CRUD, conditional writes, alternate keys,
//! lookups, queries and paging, errors, restart. Request/response pairs
//! follow the Microsoft Learn pages of the Dataverse Web API.

use dualwrite_emulators::{DataverseEmulator, EmulatorConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, empty_config, error_message, send_json};

fn entity_id(response: &reqwest::Response) -> String {
    let header = response
        .headers()
        .get("OData-EntityId")
        .expect("OData-EntityId header")
        .to_str()
        .expect("text");
    let open = header.rfind('(').expect("key in entity id");
    header[open + 1..header.len() - 1].to_string()
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let h = Harness::dataverse().await;
    let response = h
        .client
        .get(format!("{}/accounts", h.emulator.service_url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        challenge.starts_with("Bearer authorization_uri="),
        "{challenge}"
    );
    let body: Value = response.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("bearer token")
    );

    let response = h
        .client
        .get(format!("{}/accounts", h.emulator.service_url()))
        .bearer_auth("forged")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);

    let response = h
        .client
        .post(h.emulator.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "dualwrite"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn create_retrieve_update_delete() {
    let h = Harness::dataverse().await;
    // POST [Organization URI]/api/data/v9.2/accounts → 204 + OData-EntityId.
    let response = h
        .request(Method::POST, "accounts")
        .json(&json!({"name": "Sample Account", "creditlimit": 1000, "accountnumber": "A-1"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let id = entity_id(&response);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let (status, body) = h
        .get_json(&format!("accounts({id})?$select=name,creditlimit"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Sample Account");
    assert_eq!(body["accountid"], id);
    assert!(
        body.get("accountnumber").is_none(),
        "$select keeps only selected columns: {body}"
    );
    let etag = body["@odata.etag"].as_str().expect("etag").to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    let keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .take(2)
        .collect();
    assert_eq!(
        keys,
        ["@odata.context", "@odata.etag"],
        "annotations lead the object"
    );
    assert!(
        body["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("$metadata#accounts(name,creditlimit)/$entity")
    );

    // Prefer: return=representation → 201 with the row.
    let (status, body) = send_json(
        h.request(Method::POST, "accounts")
            .header("Prefer", "return=representation")
            .json(&json!({"name": "Represented"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["name"], "Represented");
    assert!(body["versionnumber"].as_u64().is_some());
    assert!(body["createdon"].as_str().is_some());

    // PATCH by id updates; versionnumber and etag move.
    let response = h
        .request(Method::PATCH, &format!("accounts({id})"))
        .json(&json!({"name": "Updated name"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, body) = h.get_json(&format!("accounts({id})")).await;
    assert_eq!(body["name"], "Updated name");
    assert_eq!(body["creditlimit"], 1000);
    assert_ne!(body["@odata.etag"], etag);
    let current = body["@odata.etag"].as_str().expect("etag").to_string();
    let response = h
        .request(Method::GET, &format!("accounts({id})"))
        .header("If-None-Match", &current)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status(),
        304,
        "conditional retrieval of an unchanged row"
    );

    // PATCH by an id that does not exist yet creates the row with that id.
    let chosen = "6b1c3a4e-0000-4000-8000-00000000abcd";
    let response = h
        .request(Method::PATCH, &format!("accounts({chosen})"))
        .json(&json!({"name": "Chosen id"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    assert_eq!(entity_id(&response), chosen);
    let (status, body) = h.get_json(&format!("accounts({chosen})")).await;
    assert_eq!(status, 200);
    assert_eq!(body["accountid"], chosen);

    let response = h
        .request(Method::DELETE, &format!("accounts({id})"))
        .header("If-Match", "W/\"1\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status(),
        412,
        "a stale etag protects the row from deletion"
    );
    let response = h
        .request(Method::DELETE, &format!("accounts({id})"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (status, body) = h.get_json(&format!("accounts({id})")).await;
    assert_eq!(status, 404);
    let message = error_message(&body, "0x80040217");
    assert!(message.contains("Does Not Exist"), "{message}");
    let response = h
        .request(Method::DELETE, &format!("accounts({id})"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn upsert_by_alternate_key_with_conditions() {
    let h = Harness::dataverse().await;
    // If-Match: * forbids create.
    let (status, body) = send_json(
        h.request(Method::PATCH, "accounts(accountnumber='A-9')")
            .header("If-Match", "*")
            .json(&json!({"name": "Nope"})),
    )
    .await;
    assert_eq!(status, 404);
    error_message(&body, "0x80040217");

    // Plain PATCH creates, taking the key value from the URL.
    let response = h
        .request(Method::PATCH, "accounts(accountnumber='A-9')")
        .json(&json!({"name": "Nine"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (status, body) = h.get_json("accounts(accountnumber='A-9')").await;
    assert_eq!(status, 200);
    assert_eq!(body["accountnumber"], "A-9");
    assert_eq!(body["name"], "Nine");
    let etag = body["@odata.etag"].as_str().expect("etag").to_string();

    // If-None-Match: * forbids update.
    let (status, body) = send_json(
        h.request(Method::PATCH, "accounts(accountnumber='A-9')")
            .header("If-None-Match", "*")
            .json(&json!({"name": "Again"})),
    )
    .await;
    assert_eq!(status, 412);
    error_message(&body, "0x80040237");

    // If-Match with a stale etag: 412; with the current one: 204.
    let (status, body) = send_json(
        h.request(Method::PATCH, "accounts(accountnumber='A-9')")
            .header("If-Match", "W/\"999999\"")
            .json(&json!({"name": "Stale"})),
    )
    .await;
    assert_eq!(status, 412);
    error_message(&body, "0x80060882");
    let response = h
        .request(Method::PATCH, "accounts(accountnumber='A-9')")
        .header("If-Match", &etag)
        .json(&json!({"name": "Fresh"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (_, body) = h.get_json("accounts(accountnumber='a-9')").await;
    assert_eq!(body["name"], "Fresh", "alternate keys compare without case");

    // A second row cannot take the same alternate key.
    let response = h
        .request(Method::POST, "accounts")
        .json(&json!({"name": "Dup", "accountnumber": "A-9"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 412);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn lookups_and_compound_alternate_keys() {
    let h = Harness::dataverse().await;
    let response = h
        .request(Method::POST, "cdm_companies")
        .json(&json!({"cdm_companycode": "USMF", "cdm_name": "Contoso USA"}))
        .send()
        .await
        .expect("sent");
    let company = entity_id(&response);
    // Bind by alternate key; compound key includes the company lookup.
    let response = h
        .request(
            Method::PATCH,
            &format!("msdyn_customergroups(msdyn_groupid='10',_msdyn_company_value={company})"),
        )
        .json(&json!({"msdyn_description": "Wholesale"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (status, body) = h
        .get_json(&format!(
            "msdyn_customergroups(msdyn_groupid='10',_msdyn_company_value={company})"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["_msdyn_company_value"], company);
    let group = body["msdyn_customergroupid"]
        .as_str()
        .expect("id")
        .to_string();

    let response = h
        .request(Method::POST, "accounts")
        .json(&json!({
            "name": "Bound",
            "msdyn_company@odata.bind": "/cdm_companies(cdm_companycode='USMF')",
            "msdyn_customergroupid@odata.bind": format!("/msdyn_customergroups({group})"),
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let id = entity_id(&response);
    let (_, body) = h.get_json(&format!("accounts({id})")).await;
    assert_eq!(body["_msdyn_company_value"], company);
    assert_eq!(body["_msdyn_customergroupid_value"], group);
    let (_, body) = h
        .get_json(&format!(
            "accounts?$filter=_msdyn_company_value eq {company}"
        ))
        .await;
    assert_eq!(body["value"].as_array().expect("value").len(), 1);

    // A compound key whose company does not exist cannot create a row.
    let response = h
        .request(
            Method::PATCH,
            "msdyn_customergroups(msdyn_groupid='20',_msdyn_company_value=00000000-0000-0000-0000-000000000009)",
        )
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);

    // A bind to a missing row, a bind to the wrong table, a lookup set as a value.
    let cases = [
        (
            json!({"msdyn_company@odata.bind": "/cdm_companies(00000000-0000-0000-0000-000000000001)"}),
            404,
        ),
        (
            json!({"msdyn_company@odata.bind": format!("/accounts({id})")}),
            400,
        ),
        (json!({"msdyn_company": company}), 400),
    ];
    for (body, status) in cases {
        let response = h
            .request(Method::POST, "accounts")
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), status, "{body}");
    }
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn bad_input_gets_odata_errors() {
    let h = Harness::dataverse().await;
    let cases: [(Method, &str, Option<&str>, u16, &str); 11] = [
        (
            Method::POST,
            "accounts",
            Some(r#"{"nosuchcolumn": 1}"#),
            400,
            "nosuchcolumn",
        ),
        (
            Method::POST,
            "accounts",
            Some(r#"{"creditlimit": "lots"}"#),
            400,
            "creditlimit",
        ),
        (
            Method::POST,
            "accounts",
            Some("{not json"),
            400,
            "not valid JSON",
        ),
        (Method::POST, "accounts", Some("[1]"), 400, "JSON object"),
        (
            Method::GET,
            "accounts?$filter=name eq",
            None,
            400,
            "position 7",
        ),
        (
            Method::GET,
            "accounts?$filter=nosuch eq 1",
            None,
            400,
            "nosuch",
        ),
        (Method::GET, "accounts?$skip=10", None, 400, "$skip"),
        (Method::GET, "accounts(42)", None, 400, "not a GUID"),
        (
            Method::GET,
            "accounts(nosuchkey='x')",
            None,
            400,
            "alternate key",
        ),
        (Method::GET, "accounts?$top=-1", None, 400, "$top"),
        (
            Method::GET,
            "accounts?$skiptoken=abc",
            None,
            400,
            "$skiptoken",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let mut request = h.request(method, path);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: Value = response.json().await.expect("json");
        // An unknown property in a payload has its own code.
        let code = if needle == "nosuchcolumn" {
            "0x80048d19"
        } else {
            "0x80060888"
        };
        let message = error_message(&body, code);
        assert!(message.contains(needle), "{path}: {message}");
    }
    // Huge numbers page nothing and do not overflow.
    let (status, _) = h
        .get_json("accounts?$skiptoken=18446744073709551615&$top=18446744073709551615")
        .await;
    assert_eq!(status, 200);
    let (status, body) = h.get_json("nosuchset").await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("nosuchset")
    );
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn queries_select_filter_order_top_count_and_paging() {
    let h = Harness::dataverse().await;
    for i in 0..12 {
        let response = h
            .request(Method::POST, "accounts")
            .json(&json!({"name": format!("Account {i:02}"), "accountnumber": format!("Q-{i:02}"), "creditlimit": i * 100}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 204);
    }
    let (status, body) = h
        .get_json("accounts?$select=name,creditlimit&$filter=creditlimit ge 500 and not startswith(name,'Account 1')&$orderby=creditlimit desc&$count=true")
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "Account 09",
            "Account 08",
            "Account 07",
            "Account 06",
            "Account 05"
        ]
    );
    assert_eq!(body["@odata.count"], 5);
    assert!(body["value"][0].get("accountnumber").is_none());
    assert!(
        body["value"][0]["accountid"].is_string(),
        "the primary key is always returned"
    );

    let response = h
        .request(Method::GET, "accounts/$count?$filter=creditlimit ge 500")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "7");
    let (status, _) = h.get_json("accounts/$value").await;
    assert_eq!(status, 404);

    let (_, body) = h.get_json("accounts?$orderby=name&$top=3").await;
    assert_eq!(body["value"].as_array().expect("value").len(), 3);
    assert!(body.get("@odata.nextLink").is_none());

    // Prefer: odata.maxpagesize=5 → pages of 5 linked by @odata.nextLink.
    let mut url = format!(
        "{}/accounts?$select=name&$orderby=name",
        h.emulator.service_url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = h
            .client
            .get(&url)
            .bearer_auth(&h.token)
            .header("Prefer", "odata.maxpagesize=5")
            .send()
            .await
            .expect("sent");
        assert_eq!(
            response.headers()["preference-applied"],
            "odata.maxpagesize=5"
        );
        let body: Value = response.json().await.expect("json");
        pages += 1;
        for row in body["value"].as_array().expect("value") {
            seen.push(row["name"].as_str().expect("name").to_string());
        }
        match body.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 12);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..empty_config()
    };
    let emulator = DataverseEmulator::start(config()).await.expect("start");
    let client = reqwest::Client::new();
    let token = crate::support::token(&client, &emulator).await;
    let response = client
        .patch(format!(
            "{}/accounts(accountnumber='KEEP-1')",
            emulator.service_url()
        ))
        .bearer_auth(&token)
        .json(&json!({"name": "Kept"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    emulator.shutdown().await.expect("shutdown");

    let emulator = DataverseEmulator::start(config()).await.expect("restart");
    let token = crate::support::token(&client, &emulator).await;
    let body: Value = client
        .get(format!(
            "{}/accounts(accountnumber='KEEP-1')",
            emulator.service_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(body["name"], "Kept");
    let before = body["versionnumber"].as_u64().expect("version");
    let body: Value = client
        .patch(format!(
            "{}/accounts(accountnumber='KEEP-2')",
            emulator.service_url()
        ))
        .bearer_auth(&token)
        .header("Prefer", "return=representation")
        .json(&json!({"name": "After restart"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(
        body["versionnumber"].as_u64().expect("version") > before,
        "versions keep growing across restarts"
    );
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn pre_commit_hook_failures_fail_the_write() {
    let h = Harness::dataverse().await;
    let response = h
        .client
        .put(format!("{}/admin/hooks/accounts", h.emulator.url()))
        .json(&json!({"url": "http://127.0.0.1:9/unreachable"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let (status, body) = send_json(
        h.request(Method::PATCH, "accounts(accountnumber='H-1')")
            .json(&json!({"name": "Hooked"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body, "0x80040265").contains("could not be reached"));
    let (status, _) = h.get_json("accounts(accountnumber='H-1')").await;
    assert_eq!(status, 404);
    let response = h
        .client
        .delete(format!("{}/admin/hooks/accounts", h.emulator.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let response = h
        .request(Method::PATCH, "accounts(accountnumber='H-1')")
        .json(&json!({"name": "Hooked"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let response = h
        .client
        .put(format!("{}/admin/hooks/nosuchtable", h.emulator.url()))
        .json(&json!({"url": "http://127.0.0.1:9/"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    h.emulator.shutdown().await.expect("shutdown");
}

/// A hook stands for a synchronous plug-in, which may fail a write with a
/// `PluginHttpStatusCode`: the write is answered with that status; any
/// other refusal with 400.
#[tokio::test]
async fn a_hook_fails_a_write_with_a_plug_in_status() {
    use axum::http::StatusCode;
    let h = Harness::dataverse().await;
    // The hook answers with the status the row's name gives.
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|axum::Json(change): axum::Json<Value>| async move {
            let status = change["row"]["name"]
                .as_str()
                .and_then(|name| name.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::NO_CONTENT);
            let error = json!({"error": {"code": "Plugin", "message": "the plug-in says no"}});
            (status, axum::Json(error))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let response = h
        .client
        .put(format!("{}/admin/hooks/accounts", h.emulator.url()))
        .json(&json!({ "url": hook }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    for (name, answer) in [
        ("412", 412),
        ("503", 503),
        ("429", 429),
        ("409", 409),
        // Not a status a plug-in can set.
        ("418", 400),
        ("501", 400),
    ] {
        let (status, body) = send_json(
            h.request(
                Method::PATCH,
                &format!("accounts(accountnumber='PS-{name}')"),
            )
            .json(&json!({ "name": name })),
        )
        .await;
        assert_eq!(status.as_u16(), answer, "{name}: {body}");
        let message = error_message(&body, "0x80040265");
        assert!(message.contains("the plug-in says no"), "{message}");
        let (status, _) = h
            .get_json(&format!("accounts(accountnumber='PS-{name}')"))
            .await;
        assert_eq!(status, 404, "{name}: a refused write is not committed");
    }
    let response = h
        .request(Method::PATCH, "accounts(accountnumber='PS-OK')")
        .json(&json!({"name": "Fine"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    task.abort();
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn demo_seed_links_reference_data_to_companies() {
    let config = EmulatorConfig {
        seed: dualwrite_emulators::Seed::Demo,
        ..empty_config()
    };
    let h = Harness::start(dualwrite_emulators::ServiceKind::Dataverse, config).await;
    let (_, company) = h.get_json("cdm_companies(cdm_companycode='DEMF')").await;
    let company = company["cdm_companyid"]
        .as_str()
        .expect("company id")
        .to_string();
    let (status, group) = h
        .get_json(&format!(
            "msdyn_customergroups(msdyn_groupid='20',_msdyn_company_value={company})"
        ))
        .await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["msdyn_description"], "Retail customers");
    let (_, accounts) = h
        .get_json(&format!(
            "accounts?$filter=_msdyn_company_value eq {company}&$count=true"
        ))
        .await;
    assert_eq!(accounts["@odata.count"], 2);
    let (_, currencies) = h
        .get_json("transactioncurrencies?$select=isocurrencycode&$orderby=isocurrencycode")
        .await;
    let codes: Vec<&str> = currencies["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|c| c["isocurrencycode"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["EUR", "GBP", "JPY", "USD"]);
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_one_key_make_one_row() {
    let h = Harness::dataverse().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let request = h
            .request(Method::PATCH, "accounts(accountnumber='SAME-1')")
            .json(&json!({"name": format!("Writer {i}")}));
        tasks.spawn(async move { request.send().await.expect("sent").status().as_u16() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.expect("task"), 204);
    }
    let (_, body) = h
        .get_json("accounts?$filter=accountnumber eq 'SAME-1'&$count=true")
        .await;
    assert_eq!(body["@odata.count"], 1, "{body}");
    h.emulator.shutdown().await.expect("shutdown");
}
