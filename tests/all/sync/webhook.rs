//! finops data events: the documented `RemoteExecutionContext` pushed to
//! the host's receiver, authenticated by the shared secret, taken as a hint
//! (the row is read again) and queued and flushed before the 2xx.

use dualwrite::checkpoint::{Action, Direction};
use dualwrite::connector::Key;
use serde_json::{Value, json};

use super::{MAPS, Sync, eventually, settle, text};

/// A data event as finops posts it: a `RemoteExecutionContext` for
/// `message` of `CustomersV3` whose Target holds `fields`.
pub fn data_event(message: &str, fields: Value) -> Value {
    let attributes: Vec<Value> = fields
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    let entity = json!({
        "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
        "Attributes": attributes, "EntityState": null, "FormattedValues": [],
        "Id": "00000000-0000-0000-0000-000000000000", "KeyAttributes": [],
        "LogicalName": "CustomersV3", "RelatedEntities": [], "RowVersion": null
    });
    let mut parameters = vec![json!({"key": "Target", "value": entity})];
    if message != "Create" {
        parameters.push(json!({"key": "PreImage", "value": entity}));
    }
    json!({
        "BusinessUnitId": "00000000-0000-0000-0000-000000000000",
        "CorrelationId": "6f0c5a34-1c1f-4f43-9f7e-2f8b1d1a0c11",
        "Depth": 1, "InputParameters": parameters, "MessageName": message, "Mode": 1,
        "OperationCreatedOn": "/Date(1764590000000+0000)/",
        "PrimaryEntityId": "00000000-0000-0000-0000-000000000000",
        "PrimaryEntityName": "CustomersV3", "Stage": 40
    })
}

/// Posts `event` to the engine's finops receiver with the secret; the
/// status.
async fn post(sync: &Sync, event: &Value) -> u16 {
    let url = sync
        .engine()
        .webhook_url("finops")
        .expect("webhook receiver");
    reqwest::Client::new()
        .post(&url)
        .header("X-Dualwrite-Secret", "hook-secret")
        .json(event)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_events_arrive_by_webhook_and_need_the_secret() {
    // Reconciliation only every hour: a change must come by data event.
    let sync = Sync::start(
        MAPS,
        "listen = \"127.0.0.1:0\"\ncatch_all_interval = \"1h\"",
    )
    .await;
    sync.company_id("usmf").await;
    let url = sync
        .engine()
        .webhook_url("finops")
        .expect("webhook receiver");
    let client = reqwest::Client::new();
    let event = data_event(
        "Create",
        json!({"dataAreaId": "usmf", "CustomerAccount": "W-0"}),
    );
    let status = |r: reqwest::Response| r.status().as_u16();
    let unsigned = client.post(&url).json(&event).send().await.expect("sent");
    assert_eq!(status(unsigned), 401);
    let wrong = client
        .post(&url)
        .header("X-Dualwrite-Secret", "nope")
        .json(&event)
        .send()
        .await
        .expect("sent");
    assert_eq!(status(wrong), 401);
    let garbage = client
        .post(&url)
        .header("X-Dualwrite-Secret", "hook-secret")
        .body("{")
        .send()
        .await
        .expect("sent");
    assert_eq!(status(garbage), 400);
    let unknown = client
        .post(url.replace("/finops", "/nowhere"))
        .json(&event)
        .send()
        .await
        .expect("sent");
    assert_eq!(status(unknown), 404);

    sync.finops.subscribe(dualwrite_emulators::Subscription {
        url: url.clone(),
        entities: vec!["CustomersV3".into()],
        headers: super::secret_header(),
    });
    sync.fo_upsert(
        "CustomersV3",
        &[("dataAreaId", "usmf"), ("CustomerAccount", "W-1")],
        json!({"OrganizationName": "Pushed", "PartyType": "Organization"}),
    )
    .await;
    eventually("W-1 in Dataverse by webhook", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "W-1"))
            .await
            .is_some()
    })
    .await;
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_of_a_row_the_host_created_is_traced_by_the_id_the_write_returned() {
    // Dataverse is read once at start, then only every hour: the account
    // the host creates is deleted before change tracking ever reports it.
    let mut sync = Sync::start_pushed().await;
    let key = [("dataAreaId", "usmf"), ("CustomerAccount", "W-2")];
    sync.fo_upsert(
        "CustomersV3",
        &key,
        json!({"OrganizationName": "Short-lived", "PartyType": "Organization"}),
    )
    .await;
    eventually("W-2 in Dataverse", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "W-2"))
            .await
            .is_some()
    })
    .await;
    sync.dv_delete("accounts", Key::single("accountnumber", "W-2"))
        .await;
    // A restart reads change tracking at once: the delete names only the
    // row's id.
    sync.stop_engine().await;
    sync.start_engine().await;
    eventually("W-2 deleted in finops", || async {
        sync.fo_get("CustomersV3", &key).await.is_none()
    })
    .await;
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_event_without_a_usable_key_is_logged_not_dropped_silently() {
    let sync = Sync::start(
        MAPS,
        "listen = \"127.0.0.1:0\"\ncatch_all_interval = \"1h\"",
    )
    .await;
    sync.company_id("usmf").await;
    let url = sync
        .engine()
        .webhook_url("finops")
        .expect("webhook receiver");
    let event = data_event(
        "Update",
        json!({"dataAreaId": "usmf", "OrganizationName": "No account number"}),
    );
    let answer = reqwest::Client::new()
        .post(&url)
        .header("X-Dualwrite-Secret", "hook-secret")
        .json(&event)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status().as_u16(), 200);
    let skipped = sync.activity("customers", Action::Skipped);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].detail.contains("Update event of CustomersV3")
            && skipped[0]
                .detail
                .contains("lacks the map's key field `CustomerAccount`"),
        "{}",
        skipped[0].detail
    );
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_a_hint_the_row_read_again_decides() {
    // No subscription and reconciliation every hour: only the events the
    // test posts make the engine look at a row.
    let sync = Sync::start(
        MAPS,
        "listen = \"127.0.0.1:0\"\ncatch_all_interval = \"1h\"",
    )
    .await;
    sync.company_id("usmf").await;
    let key = [("dataAreaId", "usmf"), ("CustomerAccount", "F-1")];
    sync.fo_upsert(
        "CustomersV3",
        &key,
        json!({"OrganizationName": "Held by finops", "PartyType": "Organization"}),
    )
    .await;
    let account = || Key::single("accountnumber", "F-1");
    // A forged Target: the values the service holds are what is synced.
    let forged = data_event(
        "Update",
        json!({"dataAreaId": "usmf", "CustomerAccount": "F-1", "OrganizationName": "Forged", "PartyType": "Organization"}),
    );
    assert_eq!(post(&sync, &forged).await, 200);
    eventually("F-1 in Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_some()
    })
    .await;
    settle(&sync).await;
    let row = sync.dv_get("accounts", account()).await.expect("F-1");
    assert_eq!(text(&row, "name"), "Held by finops", "{row:?}");
    let before = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!((before.captured, before.written), (1, 1), "{before:?}");

    // Replayed, and an old event of the row: the row is as the host last
    // saw it, so nothing is queued.
    assert_eq!(post(&sync, &forged).await, 200);
    let old = data_event(
        "Create",
        json!({"dataAreaId": "usmf", "CustomerAccount": "F-1", "OrganizationName": "Long ago"}),
    );
    assert_eq!(post(&sync, &old).await, 200);
    settle(&sync).await;
    let after = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!(after, before, "a replayed event changes nothing");
    let row = sync.dv_get("accounts", account()).await.expect("F-1");
    assert_eq!(text(&row, "name"), "Held by finops");

    // The row deleted without an event; an event naming it (even an
    // update) finds it gone: its delete is queued.
    sync.fo_delete("CustomersV3", &key).await;
    assert_eq!(post(&sync, &forged).await, 200);
    eventually("F-1 deleted from Dataverse", || async {
        sync.dv_get("accounts", account()).await.is_none()
    })
    .await;
    settle(&sync).await;
    let deleted = sync.engine().stats("customers", Direction::LeftToRight);
    assert_eq!(deleted.deleted, 1, "{deleted:?}");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_missed_is_caught_by_reconciliation_at_the_catch_all_interval() {
    let sync = Sync::start(
        MAPS,
        "listen = \"127.0.0.1:0\"\ncatch_all_interval = \"2s\"",
    )
    .await;
    sync.company_id("usmf").await;
    sync.push_finops_events();
    let customer = |n: &'static str| [("dataAreaId", "usmf"), ("CustomerAccount", n)];
    sync.fo_upsert(
        "CustomersV3",
        &customer("M-1"),
        json!({"OrganizationName": "By event", "PartyType": "Organization"}),
    )
    .await;
    eventually("M-1 in Dataverse", || async {
        sync.dv_get("accounts", Key::single("accountnumber", "M-1"))
            .await
            .is_some()
    })
    .await;
    // The subscription dropped: the next change sends no event.
    let dropped = reqwest::Client::new()
        .delete(format!("{}/admin/subscriptions", sync.finops.url()))
        .send()
        .await
        .expect("sent");
    assert!(dropped.status().is_success(), "{}", dropped.status());
    sync.fo_upsert(
        "CustomersV3",
        &customer("M-1"),
        json!({"OrganizationName": "Missed by events"}),
    )
    .await;
    sync.fo_upsert(
        "CustomersV3",
        &customer("M-2"),
        json!({"OrganizationName": "Never announced", "PartyType": "Organization"}),
    )
    .await;
    eventually("M-1's update and M-2 in Dataverse", || async {
        let m1 = sync
            .dv_get("accounts", Key::single("accountnumber", "M-1"))
            .await;
        let m2 = sync
            .dv_get("accounts", Key::single("accountnumber", "M-2"))
            .await;
        m1.is_some_and(|row| text(&row, "name") == "Missed by events") && m2.is_some()
    })
    .await;
    sync.shutdown().await;
}
