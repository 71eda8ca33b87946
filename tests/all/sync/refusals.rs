//! Refusals of one row do not stall the others: a `$batch` refused as a
//! whole, a refused read of a row's lookup while preparing a write, and a
//! refused read while capturing a row. Each time the row at fault is parked
//! with the service's message and the other rows flow.
//!
//! A proxy in front of the Dataverse emulator refuses (400, an OData error)
//! every request whose method, URL or body names one of its markers, as a
//! plugin or a business rule of the service would refuse that data.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dualwrite::checkpoint::{Action, Direction};
use dualwrite::connector::Key;
use serde_json::{Value, json};

use super::{MAPS, Sync, eventually, in_usmf, text};

/// The marker the proxy's error message carries.
const REFUSAL: &str = "refused by the proxy's rule";

#[derive(Clone)]
struct Proxy {
    upstream: String,
    own: String,
    markers: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

async fn forward(
    State(proxy): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!("{}{}", proxy.upstream, uri);
    let seen = format!("{method} {url} {}", String::from_utf8_lossy(&body));
    let markers = proxy.markers.lock().expect("markers").clone();
    if let Some(marker) = markers.iter().find(|m| seen.contains(m.as_str())) {
        let error =
            json!({"error": {"code": "0x80040265", "message": format!("{marker}: {REFUSAL}")}});
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    let mut request = proxy.client.request(method, &url).body(body.to_vec());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let Ok(response) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = response.status();
    let mut out = HeaderMap::new();
    for (name, value) in response.headers() {
        if name == "content-length" || name == "transfer-encoding" {
            continue;
        }
        let value = value
            .to_str()
            .map(|v| v.replace(&proxy.upstream, &proxy.own))
            .ok()
            .and_then(|v| v.parse().ok());
        if let Some(value) = value {
            out.insert(name.clone(), value);
        }
    }
    let text = response.text().await.unwrap_or_default();
    // Links the service writes (next and delta links, entity ids) point
    // back through the proxy.
    (status, out, text.replace(&proxy.upstream, &proxy.own)).into_response()
}

/// Starts [`MAPS`] with the engine's Dataverse behind a refusing proxy;
/// returns the sync (engine not started) and the proxy's markers.
async fn behind_proxy() -> (Sync, Arc<Mutex<Vec<String>>>) {
    let mut sync = Sync::start(MAPS, "").await;
    sync.company_id("usmf").await;
    sync.stop_engine().await;
    // The store's delta links point at the emulator itself, which the
    // connector rightly refuses to follow through another URL: the engine
    // behind the proxy starts from an empty store.
    std::fs::remove_dir_all(sync.dir.path().join("data")).expect("the store removed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy listens");
    let own = format!("http://{}", listener.local_addr().expect("proxy address"));
    let markers = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        upstream: sync.dataverse.url(),
        own: own.clone(),
        markers: markers.clone(),
        client: reqwest::Client::new(),
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move { axum::serve(listener, app).await });
    sync.dataverse_via = Some(format!("{own}/api/data/v9.2"));
    (sync, markers)
}

fn customer(number: &str) -> [(&str, &str); 2] {
    [("dataAreaId", "usmf"), ("CustomerAccount", number)]
}

fn account(number: &str) -> Key {
    Key::single("accountnumber", number)
}

/// Waits until `number` is parked in `direction` and returns the reason.
async fn parked_reason(sync: &Sync, direction: Direction, number: &str) -> String {
    let parked = || {
        sync.engine()
            .checkpoints()
            .parked("customers", direction)
            .expect("parked keys")
            .into_iter()
            .find(|(key, _)| key.starts_with(number))
            .map(|(_, parked)| parked.reason)
    };
    eventually(&format!("{number} parked"), || async { parked().is_some() }).await;
    parked().expect("parked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_as_a_whole_parks_only_the_row_at_fault() {
    let (mut sync, markers) = behind_proxy().await;
    markers.lock().expect("markers").push("Poisoned".into());
    for (number, name) in [
        ("R-1", "Fine one"),
        ("R-2", "Poisoned"),
        ("R-3", "Fine three"),
    ] {
        sync.fo_upsert(
            "CustomersV3",
            &customer(number),
            json!({"OrganizationName": name, "PartyType": "Organization"}),
        )
        .await;
    }
    sync.start_engine_only().await;
    for number in ["R-1", "R-3"] {
        eventually(&format!("{number} in Dataverse"), || async {
            sync.dv_get("accounts", account(number)).await.is_some()
        })
        .await;
    }
    let reason = parked_reason(&sync, Direction::LeftToRight, "R-2").await;
    assert!(reason.contains(REFUSAL), "{reason}");
    assert!(sync.dv_get("accounts", account("R-2")).await.is_none());
    // The direction keeps flowing.
    sync.fo_upsert(
        "CustomersV3",
        &customer("R-4"),
        json!({"OrganizationName": "Later", "PartyType": "Organization"}),
    )
    .await;
    eventually("R-4 in Dataverse", || async {
        sync.dv_get("accounts", account("R-4")).await.is_some()
    })
    .await;
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_lookup_read_parks_only_its_row() {
    let (mut sync, markers) = behind_proxy().await;
    markers.lock().expect("markers").push("G-POISON".into());
    sync.fo_upsert(
        "CustomersV3",
        &customer("L-1"),
        json!({"OrganizationName": "Grouped", "PartyType": "Organization", "CustomerGroupId": "G-POISON"}),
    )
    .await;
    sync.fo_upsert(
        "CustomersV3",
        &customer("L-2"),
        json!({"OrganizationName": "Plain", "PartyType": "Organization"}),
    )
    .await;
    sync.start_engine_only().await;
    eventually("L-2 in Dataverse", || async {
        sync.dv_get("accounts", account("L-2")).await.is_some()
    })
    .await;
    let reason = parked_reason(&sync, Direction::LeftToRight, "L-1").await;
    assert!(reason.contains("lookups could not be resolved"), "{reason}");
    assert!(reason.contains(REFUSAL), "{reason}");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_cannot_be_read_at_capture_is_parked_and_heals_on_retry() {
    let (mut sync, markers) = behind_proxy().await;
    let usmf = sync.company_id("usmf").await;
    let group_key = || {
        Key::new()
            .text("msdyn_groupid", "G-9")
            .guid("_msdyn_company_value", usmf.parse().expect("guid"))
    };
    sync.dv_upsert(
        "msdyn_customergroups",
        group_key(),
        in_usmf(json!({"msdyn_description": "Nine"})),
    )
    .await;
    let group = sync
        .dv_get("msdyn_customergroups", group_key())
        .await
        .expect("the group");
    let group_id = text(&group, "msdyn_customergroupid");
    // Reading that group by id is refused: an account pointing at it
    // cannot be read in full.
    markers.lock().expect("markers").push(group_id.clone());
    let mut grouped = in_usmf(json!({"name": "Grouped", "customertypecode": 3}));
    grouped.as_object_mut().expect("object").insert(
        "msdyn_customergroupid@odata.bind".into(),
        Value::String(format!("/msdyn_customergroups({group_id})")),
    );
    sync.dv_upsert("accounts", account("U-1"), grouped).await;
    sync.dv_upsert(
        "accounts",
        account("U-2"),
        in_usmf(json!({"name": "Plain", "customertypecode": 3})),
    )
    .await;
    sync.start_engine_only().await;
    eventually("U-2 in finops", || async {
        sync.fo_get("CustomersV3", &customer("U-2")).await.is_some()
    })
    .await;
    let reason = parked_reason(&sync, Direction::RightToLeft, "U-1").await;
    assert!(reason.contains("could not be read"), "{reason}");
    assert!(reason.contains(REFUSAL), "{reason}");
    assert!(sync.fo_get("CustomersV3", &customer("U-1")).await.is_none());
    // The service stops refusing; the admin retries the row: it is read
    // again and written.
    markers.lock().expect("markers").clear();
    let store = sync.engine().checkpoints();
    let (key, _) = store
        .parked("customers", Direction::RightToLeft)
        .expect("parked keys")
        .pop()
        .expect("U-1 parked");
    store
        .resubmit("customers", Direction::RightToLeft, &key)
        .expect("resubmitted");
    eventually("U-1 in finops, with its group", || async {
        sync.fo_get("CustomersV3", &customer("U-1"))
            .await
            .is_some_and(|row| text(&row, "CustomerGroupId") == "G-9")
    })
    .await;
    assert_eq!(sync.activity("customers", Action::Parked).len(), 1);
    sync.shutdown().await;
}
