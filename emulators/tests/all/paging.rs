//! Paged reads give the same rows however they are read: a read without
//! `$orderby` or `$count` reads the store only up to its page's end
//! (`dataverse/page.rs`, `finops/page.rs`), and its pages must hold what
//! one read of the whole, ordered by key, holds.

use dualwrite_emulators::{EmulatorConfig, ServiceKind};
use serde_json::Value;

use crate::support::Harness;

async fn pages(h: &Harness, first: &str, size: usize) -> Vec<Value> {
    let root = format!("{}/", h.emulator.service_url());
    let mut next = Some(first.to_string());
    let mut rows = Vec::new();
    while let Some(path) = next.take() {
        let response = h
            .request(reqwest::Method::GET, &path)
            .header("Prefer", format!("odata.maxpagesize={size}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.expect("json");
        let page = body["value"].as_array().expect("value");
        assert!(page.len() <= size, "{path}");
        rows.extend(page.iter().cloned());
        next = body["@odata.nextLink"]
            .as_str()
            .map(|link| link.strip_prefix(&root).expect("same service").to_string());
    }
    rows
}

fn keys(rows: &[Value], key: &str) -> Vec<String> {
    rows.iter()
        .map(|r| r[key].as_str().expect("key").to_string())
        .collect()
}

#[tokio::test]
async fn dataverse_pages_hold_what_one_ordered_read_holds() {
    let config = EmulatorConfig {
        rows: 60,
        ..EmulatorConfig::empty()
    };
    let h = Harness::start(ServiceKind::Dataverse, config).await;
    for query in [
        "$select=name",
        "$select=name&$filter=creditlimit ge 20000",
        "$select=name&$top=17",
        "$select=name&$filter=creditlimit ge 20000&$top=9",
    ] {
        let paged = pages(&h, &format!("accounts?{query}"), 4).await;
        let whole = pages(&h, &format!("accounts?{query}&$orderby=accountid"), 5000).await;
        assert!(!whole.is_empty(), "{query}");
        assert_eq!(
            keys(&paged, "accountid"),
            keys(&whole, "accountid"),
            "{query}"
        );
    }
    h.emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn finops_pages_hold_what_one_ordered_read_holds() {
    let config = EmulatorConfig {
        rows: 60,
        ..EmulatorConfig::empty()
    };
    let h = Harness::start(ServiceKind::Finops, config).await;
    for query in [
        "$select=CustomerAccount",
        "cross-company=true&$select=CustomerAccount",
        "cross-company=true&$filter=CreditLimit ge 20000",
        "$skip=3&$top=11",
        "cross-company=true&$skip=5&$top=30&$filter=CreditLimit ge 10000",
    ] {
        let paged = pages(&h, &format!("CustomersV3?{query}"), 4).await;
        let whole = pages(
            &h,
            &format!("CustomersV3?{query}&$orderby=dataAreaId,CustomerAccount"),
            10_000,
        )
        .await;
        assert!(!whole.is_empty(), "{query}");
        assert_eq!(
            keys(&paged, "CustomerAccount"),
            keys(&whole, "CustomerAccount"),
            "{query}"
        );
        if !query.contains("$top") && !query.contains("$skip") {
            let count = h
                .request(reqwest::Method::GET, &format!("CustomersV3/$count?{query}"))
                .send()
                .await
                .expect("sent")
                .text()
                .await
                .expect("text");
            assert_eq!(count, whole.len().to_string(), "{query}");
        }
    }
    h.emulator.shutdown().await.expect("shutdown");
}
