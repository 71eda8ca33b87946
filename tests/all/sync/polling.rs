//! The polling budget: the polls of all maps against one system stay
//! within `engine.polling_share` of its `request_limit`, and the engine
//! says how often each side is polled.

use std::time::Duration;

use super::{MAPS, Sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_polls_of_all_maps_stay_within_the_share_of_the_request_limit() {
    // 6,000 requests in 5 minutes (the default), 10% for polls: one poll
    // each 500 ms for all maps of a system together, where each asks for
    // one every 100 ms.
    let sync = Sync::start(MAPS, "poll_interval = \"100ms\"\npolling_share = 0.1").await;
    let text = sync.config_text();
    assert!(text.contains("polling_share"), "{text}");
    let engine = sync.engine();
    let polling = engine.polling("customers");
    assert_eq!(polling.len(), 2, "{polling:?}");
    for (side, polling) in &polling {
        assert_eq!(polling.configured, Duration::from_millis(100), "{side:?}");
        // 600 polls in 5 minutes shared by the maps' sides that read the
        // system: each takes its turn.
        assert_eq!(polling.budget_per_5_min, 600, "{polling:?}");
        assert!(polling.pollers >= 2, "{polling:?}");
        let turn = Duration::from_millis(500) * u32::try_from(polling.pollers).unwrap_or(0);
        assert_eq!(polling.effective, turn, "{polling:?}");
    }

    // Idle, the maps together poll each system about twice a second
    // (600 in 5 minutes), not 30 times.
    let before = engine
        .system_stats("dataverse")
        .expect("dataverse")
        .requests;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let polls = engine
        .system_stats("dataverse")
        .expect("dataverse")
        .requests
        - before;
    assert!(polls <= 4 * 2 + 2, "{polls} polls of Dataverse in 4 s");
    assert!(
        polls >= 2,
        "{polls} polls of Dataverse in 4 s: polling still runs"
    );
    sync.shutdown().await;
}
