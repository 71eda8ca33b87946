//! The demo's frame: the header (what runs where), the initial copy with
//! its counts per map, and the closing summary that checks nothing was
//! lost.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use dualwrite::checkpoint::Direction;
use dualwrite::connector::Query;

use super::feed::Feed;
use super::setup::{self, World};
use super::view::{self, StatsRow};

/// How long the engine must be idle (nothing queued, nothing captured)
/// before the initial copy counts as done.
const QUIET: Duration = Duration::from_millis(1500);

/// The longest the summary waits for the changes in flight.
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// The longest the demo waits for the initial copy before going on.
const INITIAL_COPY_LIMIT: Duration = Duration::from_secs(120);

/// Prints what runs where.
pub fn header(world: &World, run_for: Option<Duration>) {
    println!();
    println!(
        "  finops     emulator at {} (seeded: legal entities, currencies, customer groups, payment terms, customers, vendors, contacts)",
        world.finops.service_url()
    );
    println!(
        "  Dataverse  emulator at {} (seeded: companies, currencies, groups, terms, accounts, vendors, contacts)",
        world.dataverse.service_url()
    );
    println!(
        "  login      both take client id `dualwrite` with secret `dualwrite-secret` (token endpoint under /common/oauth2/v2.0/token)"
    );
    println!(
        "  engine     the {} maps of {}, in dependency order: {}",
        world.maps.len(),
        setup::STANDARD_MAPS_FILE,
        world.maps.join(", ")
    );
    println!(
        "             finops pushes data events to {}; Dataverse change tracking is read every {}",
        world.engine.webhook_url("finops").unwrap_or_default(),
        view::millis(setup::POLL_INTERVAL)
    );
    println!(
        "             checkpoints in {} (removed at the end)",
        world.data.path().display()
    );
    for (index, step) in setup::PLUGINS.iter().enumerate() {
        let who = if index == 0 { "plugins" } else { "" };
        let settings: Vec<String> = step
            .settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        println!(
            "  {who:<9}  {:<10} {}: {} ({})",
            step.map,
            view::plugin_direction(step.direction),
            step.plugin,
            settings.join("; ")
        );
    }
    match run_for {
        Some(span) => println!(
            "  ends       after {} (--for), or on Ctrl-C",
            humantime::format_duration(span)
        ),
        None => println!("  ends       on Ctrl-C"),
    }
    println!("\n  Each line below: seconds since the start, who speaks, what happened.");
}

/// Waits for the initial copy, then prints its counts per map.
pub async fn initial_copy(world: &World, feed: &mut Feed, start: Instant) {
    view::heading("Initial copy: each side's rows go to the other, through the maps");
    let began = Instant::now();
    let mut copied: Option<Duration> = None;
    let mut quiet = Quiet::new();
    loop {
        feed.skip_pending();
        if copied.is_none() && world.engine.initialized() {
            copied = Some(began.elapsed());
        }
        // Done when every map has copied and then the engine was idle for
        // a while: the other side has reported the host's writes back (the
        // echoes) by then. A long quiet counts too, should the engine not
        // say.
        let idle = quiet.observe(world);
        if (copied.is_some() && idle >= QUIET) || idle >= QUIET * 4 {
            break;
        }
        if began.elapsed() > INITIAL_COPY_LIMIT {
            view::note(start, "the initial copy is still running; going on anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    feed.skip_pending();
    let took = copied.unwrap_or_else(|| began.elapsed());
    view::note(
        start,
        &format!(
            "initial copy done in {}; per map and direction the engine has",
            view::millis(took)
        ),
    );
    view::stats_table(&stats(world));
    println!(
        "  (echoes: the host's own writes, reported back by the other side and dropped;\n   conflicts: rows both sides had with different values, settled by the map's policy, here the newer change wins;\n   skipped: rows a filter or plugin keeps on their side, and rows both sides already hold alike)"
    );
}

/// Tells how long the engine has been idle: nothing queued, nothing newly
/// captured.
struct Quiet {
    last: (usize, u64),
    since: Instant,
}

impl Quiet {
    fn new() -> Quiet {
        Quiet {
            last: (usize::MAX, u64::MAX),
            since: Instant::now(),
        }
    }

    /// Looks at the engine now; returns how long it has been idle.
    fn observe(&mut self, world: &World) -> Duration {
        let captured = stats(world).iter().map(|row| row.stats.captured).sum();
        let now = (world.engine.queued(), captured);
        if now != self.last || now.0 > 0 {
            self.last = now;
            self.since = Instant::now();
        }
        self.since.elapsed()
    }
}

fn stats(world: &World) -> Vec<StatsRow> {
    world
        .maps
        .iter()
        .flat_map(|map| {
            [Direction::LeftToRight, Direction::RightToLeft].map(|direction| StatsRow {
                map: map.clone(),
                direction,
                stats: world.engine.stats(map, direction),
            })
        })
        .collect()
}

/// Lets the changes in flight land, then prints what the engine did and
/// whether anything was lost; `Ok(false)` when something was.
pub async fn close(world: &World, feed: &mut Feed, ended: &str) -> anyhow::Result<bool> {
    view::heading(&format!("Summary ({ended})"));
    // The changes in flight land first: a Dataverse change is only seen at
    // the next poll, so an empty queue alone does not mean done.
    let settle = Instant::now();
    let mut quiet = Quiet::new();
    while quiet.observe(world) < QUIET && settle.elapsed() < SETTLE_LIMIT {
        feed.idle(Duration::from_millis(100)).await;
    }
    println!(
        "  after {:.1} s, counted since the start:",
        feed.start.elapsed().as_secs_f64()
    );
    view::stats_table(&stats(world));
    let mut ok = true;
    println!(
        "  {} scripted changes arrived on the other side, in {}",
        feed.latencies.len(),
        view::spread(&feed.latencies)
    );
    if feed.stopped > 0 {
        println!(
            "  {} stopped on purpose on the way (a filter, a plugin, the error queue)",
            feed.stopped
        );
    }
    for missed in &feed.missed {
        ok = false;
        println!("  missing: {missed}");
    }
    let queued = world.engine.queued();
    if queued > 0 {
        ok = false;
        println!("  still queued: {queued} changes");
    }
    let mut parked = Vec::new();
    for map in &world.maps {
        for direction in [Direction::LeftToRight, Direction::RightToLeft] {
            for (key, entry) in world
                .engine
                .checkpoints()
                .parked(map, direction)
                .context("reading the error queue")?
            {
                parked.push(format!("{map} {key}: {}", entry.reason));
            }
        }
    }
    match parked.len() {
        0 => println!("  error queue: empty"),
        n => println!("  error queue: {n} parked, waiting for a fix and a resubmit:"),
    }
    for line in &parked {
        println!("    {line}");
    }
    let finops = world
        .fo
        .query_all(
            "CustomersV3",
            &Query {
                select: vec!["CustomerAccount".into()],
                filter: Some("PartyType eq 'Organization'".into()),
            },
        )
        .await
        .context("counting the customers in finops")?
        .len();
    let dataverse = world
        .dv
        .query_all(
            "accounts",
            &Query {
                select: vec!["accountnumber".into()],
                filter: Some("customertypecode eq 3".into()),
            },
        )
        .await
        .context("counting the accounts in Dataverse")?
        .len();
    let expected = finops
        == dataverse
            + parked
                .iter()
                .filter(|p| p.starts_with("customers "))
                .count();
    println!(
        "  customers: {finops} organizations in finops, {dataverse} customer accounts in Dataverse"
    );
    if !expected {
        ok = false;
    }
    if ok {
        println!("  nothing lost: every change arrived, every queue is empty, both sides agree");
    } else {
        println!("  something did not arrive: see the lines above");
    }
    Ok(ok)
}
