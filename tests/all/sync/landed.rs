//! A batch whose answer never came back, though the target committed it
//! (the connection dropped mid-answer: what a crash between the target's
//! commit and the checkpoint also leaves), is finished from what the
//! target holds when it is taken again: each of its rows that holds the
//! write is recorded as written, or deleted, without a second request.
//! Counted per row in the emulator's writes, not in rows.

use std::time::Duration;

use dualwrite::checkpoint::{Action, Direction};
use dualwrite::connector::{ConnectorOptions, RetryPolicy};
use dualwrite::sync::{Engine, EngineOptions};
use dualwrite_emulators::FaultConfig;
use serde_json::{Value, json};

use super::{Sync, eventually, settle};

/// Currencies, finops to Dataverse only: nothing is read back from
/// Dataverse but what the engine reads itself, and a write needs no read
/// (no lookups) before it is sent.
const ONE_WAY: &str = r#"
[[maps]]
name = "currencies"
left = { system = "finops", table = "Currencies" }
right = { system = "dataverse", table = "transactioncurrencies" }
key = ["CurrencyCode > isocurrencycode"]
fields = ["Name > currencyname"]
"#;

/// The store id of currency `code` in the Dataverse emulator.
fn id_of(sync: &Sync, code: &str) -> Option<String> {
    sync.dataverse
        .writes("transactioncurrencies")
        .expect("the emulator's writes")
        .into_iter()
        .find(|w| {
            w.row.as_ref().and_then(|r| r.get("isocurrencycode"))
                == Some(&Value::String(code.into()))
        })
        .map(|w| w.id)
}

/// `(writes, name)` of the currency stored under `id` (`None` for the
/// name once deleted).
fn writes_of(sync: &Sync, id: &str) -> Option<(u64, Option<String>)> {
    sync.dataverse
        .writes("transactioncurrencies")
        .expect("the emulator's writes")
        .into_iter()
        .find(|w| w.id == id)
        .map(|w| {
            let name = w
                .row
                .as_ref()
                .and_then(|r| r.get("currencyname"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            (w.writes, name)
        })
}

async fn currency(sync: &Sync, code: &str, name: &str) {
    sync.fo_upsert(
        "Currencies",
        &[("CurrencyCode", code)],
        json!({"Name": name}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_committed_but_never_answered_is_not_written_again() {
    let mut sync = Sync::start(ONE_WAY, "").await;
    for code in ["XAA", "XBB"] {
        currency(&sync, code, &format!("Currency {code}")).await;
    }
    eventually("both currencies", || async {
        id_of(&sync, "XAA").is_some() && id_of(&sync, "XBB").is_some()
    })
    .await;
    settle(&sync).await;
    let (renamed, deleted) = (
        id_of(&sync, "XAA").expect("XAA"),
        id_of(&sync, "XBB").expect("XBB"),
    );

    // While the host is down, one currency renamed and one deleted: the
    // next start sends both in one batch.
    sync.stop_engine().await;
    currency(&sync, "XAA", "Renamed").await;
    sync.fo_delete("Currencies", &[("CurrencyCode", "XBB")])
        .await;
    // Every answer of Dataverse now breaks off mid-body, after the service
    // has done the work. The connectors keep their default retries: a
    // `$batch` whose answer was lost is not sent again by the transport, so
    // the batch fails and its intents settle it when it is taken again.
    sync.dataverse.set_faults(FaultConfig {
        drop_share: 1.0,
        ..FaultConfig::default()
    });
    let options = EngineOptions {
        connector: ConnectorOptions {
            retry: RetryPolicy {
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                ..RetryPolicy::default()
            },
            ..ConnectorOptions::default()
        },
        ..EngineOptions::default()
    };
    sync.engine = Some(
        Engine::start(sync.plan(), options)
            .await
            .expect("the engine starts"),
    );
    eventually("Dataverse to commit both", || async {
        writes_of(&sync, &renamed) == Some((2, Some("Renamed".into())))
            && writes_of(&sync, &deleted).is_some_and(|(_, name)| name.is_none())
    })
    .await;
    // The batch failed with its answer lost; it stays queued.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sync.activity("currencies", Action::Deleted).is_empty(),
        "nothing recorded while the answers are lost"
    );
    sync.dataverse.set_faults(FaultConfig::default());

    eventually("the batch finished", || async {
        !sync.activity("currencies", Action::Deleted).is_empty()
            && sync
                .engine()
                .stats("currencies", Direction::LeftToRight)
                .written
                >= 1
    })
    .await;
    settle(&sync).await;
    assert_eq!(
        writes_of(&sync, &renamed),
        Some((2, Some("Renamed".into()))),
        "XAA: created, then renamed once; not written again"
    );
    assert_eq!(
        writes_of(&sync, &deleted).map(|(writes, _)| writes),
        Some(2),
        "XBB: created, then deleted"
    );
    let written: Vec<_> = sync
        .activity("currencies", Action::Written)
        .into_iter()
        .filter(|a| a.key.eq_ignore_ascii_case("XAA"))
        .collect();
    assert_eq!(written.len(), 2, "created and renamed: {written:?}");
    assert!(
        written[1].detail.contains("not sent again"),
        "{}",
        written[1].detail
    );
    let gone = sync.activity("currencies", Action::Deleted);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(gone[0].key.eq_ignore_ascii_case("XBB"), "{gone:?}");
    assert!(
        gone[0].detail.contains("not sent again"),
        "the row was gone already: no second delete ({})",
        gone[0].detail
    );
    sync.shutdown().await;
}
