//! finops data events: pushed to the host's receiver, authenticated by the
//! shared secret, queued and flushed before the 2xx.

use dualwrite::checkpoint::Action;
use dualwrite::connector::Key;
use serde_json::json;

use super::{MAPS, Sync, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_events_arrive_by_webhook_and_need_the_secret() {
    // Row-version polling only every hour: a change must come by webhook.
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
    let event = json!({
        "BusinessEventId": "CustomersV3_Create", "EntityName": "CustomersV3", "EventType": "Create",
        "ControlNumber": 1, "Key": {"dataAreaId": "usmf", "CustomerAccount": "W-0"},
        "Row": {"dataAreaId": "usmf", "CustomerAccount": "W-0"}
    });
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
        url: format!("{url}?code=hook-secret"),
        entities: vec!["CustomersV3".into()],
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
    let event = json!({
        "BusinessEventId": "CustomersV3_Update", "EntityName": "CustomersV3", "EventType": "Update",
        "ControlNumber": 7, "Key": {"dataAreaId": "usmf"},
        "Row": {"dataAreaId": "usmf", "OrganizationName": "No account number"}
    });
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
        skipped[0].detail.contains("control number 7")
            && skipped[0].detail.contains("lacks the map's key fields"),
        "{}",
        skipped[0].detail
    );
    sync.shutdown().await;
}
