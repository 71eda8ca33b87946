//! The demo's world: both emulators in-process with their seed data, the
//! standard maps (`config/standard-maps.toml`) with the example plugins
//! added, and the sync engine between them, checkpointing into a temporary
//! folder. Nothing touches the process environment: the secrets go to
//! [`Config::build`] through its `env` closure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

use dualwrite::config::{AuthConfig, BuildOptions, Config, PluginConfig, SystemConfig};
use dualwrite::connector::{ConnectorOptions, Credentials, DataverseConnector, FinopsConnector};
use dualwrite::map::{Direction, EmulatorCatalogue, Plan, SystemKind};
use dualwrite::plugin::RuntimeConfig;
use dualwrite::sync::{Engine, EngineOptions, RunningEngine};
use dualwrite_emulators::{
    self as emulator, EmulatorConfig, ProtectionLimits, RunningEmulator, Seed, ServiceKind,
    Subscription,
};

/// The standard maps, as shipped.
const STANDARD_MAPS: &str = include_str!("../../../config/standard-maps.toml");

/// Where the standard maps come from, for messages.
pub const STANDARD_MAPS_FILE: &str = "config/standard-maps.toml";

/// The emulators' demo client.
const CLIENT_ID: &str = "dualwrite";
const CLIENT_SECRET: &str = "dualwrite-secret";

/// The shared secret finops data events carry to the host's webhook; the
/// demo makes it up, as an operator would.
const EVENTS_SECRET: &str = "demo-events-secret";

/// How often Dataverse change tracking (and finops, as a catch-all) is
/// polled: short, so changes show up while one watches.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A plugin the demo adds to a standard map.
#[derive(Debug, Clone, Copy)]
pub struct DemoPlugin {
    /// The map.
    pub map: &'static str,
    /// The component's name in the plugins folder, without `.wasm`.
    pub plugin: &'static str,
    /// Which pipeline runs it.
    pub direction: Direction,
    /// Its settings.
    pub settings: &'static [(&'static str, &'static str)],
}

/// The example plugins on the standard maps. Plugins see the target's
/// row: Dataverse column names left to right.
pub const PLUGINS: &[DemoPlugin] = &[
    DemoPlugin {
        map: "customers",
        plugin: "phone-normalize",
        direction: Direction::LeftToRight,
        settings: &[("fields", "telephone1"), ("region", "US")],
    },
    DemoPlugin {
        map: "customers",
        plugin: "currency-precision",
        direction: Direction::LeftToRight,
        settings: &[("fields", "creditlimit"), ("places", "2")],
    },
    DemoPlugin {
        map: "contacts",
        plugin: "phone-normalize",
        direction: Direction::LeftToRight,
        settings: &[("fields", "telephone1"), ("region", "US")],
    },
    DemoPlugin {
        map: "vendors",
        plugin: "company-filter",
        direction: Direction::LeftToRight,
        settings: &[("companies", "usmf, demf"), ("field", "msdyn_company")],
    },
];

/// Everything the demo runs.
#[derive(Debug)]
pub struct World {
    /// The finops emulator.
    pub finops: RunningEmulator,
    /// The Dataverse emulator.
    pub dataverse: RunningEmulator,
    /// A client of finops, for the demo's own changes.
    pub fo: FinopsConnector,
    /// A client of Dataverse, for the demo's own changes.
    pub dv: DataverseConnector,
    /// The sync engine.
    pub engine: RunningEngine,
    /// The maps the engine runs, in dependency order.
    pub maps: Vec<String>,
    /// Where the engine's checkpoints are; removed when the demo ends.
    pub data: tempfile::TempDir,
}

/// Fails, naming the file and what to do, when a plugin of [`PLUGINS`] is
/// not in `dir`.
pub fn check_plugins(dir: &Path) -> anyhow::Result<()> {
    for name in PLUGINS.iter().map(|p| p.plugin) {
        let path = dir.join(format!("{name}.wasm"));
        if !path.is_file() {
            bail!(
                "plugin `{name}` is missing: {} does not exist; build the plugins with \
                 `cargo xtask plugins` (`cargo xtask demo` does it for you), or point \
                 --plugins at the folder that holds them",
                path.display()
            );
        }
    }
    Ok(())
}

/// Starts both emulators, then the engine on the standard maps with
/// [`PLUGINS`] from `plugins`, and subscribes the engine's webhook to
/// finops data events. Cancelling it drops what was started.
pub async fn start(plugins: &Path) -> anyhow::Result<World> {
    check_plugins(plugins)?;
    let plugins = plugins
        .canonicalize()
        .with_context(|| format!("reading the plugins folder {}", plugins.display()))?;
    // The demo polls every half second on seven maps for as long as it
    // runs; the documented per-user budget would throttle a long run, which
    // is not what the demo is about.
    let emulator_config = EmulatorConfig {
        seed: Seed::Demo,
        limits: ProtectionLimits::UNLIMITED,
        ..EmulatorConfig::default()
    };
    let finops = emulator::start(ServiceKind::Finops, emulator_config.clone())
        .await
        .context("starting the finops emulator")?;
    let dataverse = emulator::start(ServiceKind::Dataverse, emulator_config)
        .await
        .context("starting the Dataverse emulator")?;
    let data = tempfile::Builder::new()
        .prefix("dualwrite-demo-")
        .tempdir()
        .context("creating a temporary folder for the checkpoints")?;
    let options = ConnectorOptions::default();
    let fo = FinopsConnector::new(&finops.service_url(), credentials(&finops), options.clone());
    let dv = DataverseConnector::new(&dataverse.service_url(), credentials(&dataverse), options);
    let plan = plan(&finops, &dataverse, &plugins, data.path())?;
    let maps = plan.maps.iter().map(|m| m.name.clone()).collect();
    let options = EngineOptions {
        runtime: RuntimeConfig {
            cache_dir: Some(plugins.join(".compiled")),
            ..RuntimeConfig::default()
        },
        ..EngineOptions::default()
    };
    let engine = Engine::start(plan, options)
        .await
        .context("starting the sync engine on the demo's maps")?;
    let webhook = engine
        .webhook_url("finops")
        .context("the engine runs no webhook receiver for finops data events")?;
    finops.subscribe(Subscription {
        url: webhook,
        entities: Vec::new(),
        headers: [("x-dualwrite-secret".to_owned(), EVENTS_SECRET.to_owned())].into(),
    });
    Ok(World {
        finops,
        dataverse,
        fo,
        dv,
        engine,
        maps,
        data,
    })
}

fn credentials(emulator: &RunningEmulator) -> Credentials {
    Credentials {
        token_url: emulator.token_url(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        scope: format!("{}/.default", emulator.url()),
    }
}

/// The standard maps pointed at the emulators, with [`PLUGINS`], data
/// events by webhook and checkpoints in `data`, validated.
fn plan(
    finops: &RunningEmulator,
    dataverse: &RunningEmulator,
    plugins: &Path,
    data: &Path,
) -> anyhow::Result<Plan> {
    let mut config = Config::from_toml(STANDARD_MAPS_FILE, STANDARD_MAPS)
        .context("the standard maps shipped with the demo do not parse")?;
    config.systems.insert(
        "finops".into(),
        system(SystemKind::Finops, finops, Some("DEMO_EVENTS_SECRET")),
    );
    config.systems.insert(
        "dataverse".into(),
        system(SystemKind::Dataverse, dataverse, None),
    );
    config.engine.data = data.to_path_buf();
    config.engine.poll_interval = POLL_INTERVAL;
    // The emulators run here, for one demo: half their request limit may
    // go to polls, so the demo's maps each poll about as often as asked.
    config.engine.polling_share = 0.5;
    config.engine.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    config.engine.lookup_wait = Duration::from_secs(60);
    for step in PLUGINS {
        let map = config
            .maps
            .iter_mut()
            .find(|m| m.name == step.map)
            .with_context(|| {
                format!(
                    "the standard maps have no map `{}` for plugin {}",
                    step.map, step.plugin
                )
            })?;
        map.plugins.push(PluginConfig {
            path: Some(plugins.join(format!("{}.wasm", step.plugin))),
            plugin: None,
            direction: step.direction,
            settings: step
                .settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kind: None,
            limits: None,
        });
    }
    let catalogue = EmulatorCatalogue::builtin().context("loading the built-in table catalogue")?;
    let env = |name: &str| match name {
        "FINOPS_SECRET" | "DATAVERSE_SECRET" => Some(CLIENT_SECRET.to_owned()),
        "DEMO_EVENTS_SECRET" => Some(EVENTS_SECRET.to_owned()),
        _ => None,
    };
    config
        .build(&BuildOptions {
            registry: Default::default(),
            file: STANDARD_MAPS_FILE.into(),
            base_dir: PathBuf::from("."),
            catalogue: &catalogue,
            env: &env,
        })
        .map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "the demo's maps (the standard maps plus the example plugins) do not validate:\n{}",
                lines.join("\n")
            )
        })
}

fn system(kind: SystemKind, emulator: &RunningEmulator, events: Option<&str>) -> SystemConfig {
    let secret_env = match kind {
        SystemKind::Finops => "FINOPS_SECRET",
        SystemKind::Dataverse => "DATAVERSE_SECRET",
    };
    SystemConfig {
        kind,
        url: emulator.service_url(),
        auth: Some(AuthConfig {
            token_url: Some(emulator.token_url()),
            client_id: CLIENT_ID.into(),
            client_secret_env: Some(secret_env.into()),
            ..AuthConfig::default()
        }),
        events_secret_env: events.map(str::to_owned),
        ca_file: emulator.ca_file().map(Path::to_path_buf),
        max_concurrency: dualwrite::config::MAX_CONCURRENCY,
        request_limit: dualwrite::config::REQUEST_LIMIT,
    }
}
