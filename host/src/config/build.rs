//! [`Config::build`]: from raw config to a validated [`Plan`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use super::{Config, MAX_BATCHES_IN_FLIGHT, MAX_CONCURRENCY, SystemConfig};
use crate::connector::{MAX_BATCH, TrustedCa};
use crate::map::{
    Catalogue, MapPlan, Plan, Problem, ProblemCode, Secret, SystemPlan, dependency_order,
};
use crate::plugin::PluginLimits;

/// What `build` needs besides the config.
pub struct BuildOptions<'a> {
    /// The file name problems carry.
    pub file: String,
    /// The folder relative plugin paths start from.
    pub base_dir: PathBuf,
    /// Tables and fields of each system.
    pub catalogue: &'a dyn Catalogue,
    /// Reads an environment variable (secrets); tests pass their own.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// What resolves `plugin = "name@…"` steps.
    pub registry: PluginRegistry<'a>,
}

/// What resolves a map's registry plugins (`plugin = "name@…"`) while a
/// config is built.
#[derive(Debug, Clone, Copy, Default)]
pub enum PluginRegistry<'a> {
    /// None: such a step is a problem.
    #[default]
    Absent,
    /// The registry of this store.
    Store(&'a crate::checkpoint::Checkpoints),
    /// Such steps are left out of the plan unresolved, without a problem:
    /// for reading a config's settings (where a host keeps its store, its
    /// admin API), never for running its maps.
    Unchecked,
}

impl fmt::Debug for BuildOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildOptions")
            .field("file", &self.file)
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// The limits of every enabled map's plugins: what the plugin runtime
    /// that runs them is made for
    /// (`RuntimeConfig::counting_fuel_for(plan.plugin_limits())`).
    pub fn plugin_limits(&self) -> impl Iterator<Item = &PluginLimits> {
        self.maps
            .iter()
            .filter(|map| map.enabled)
            .flat_map(|map| &map.plugins)
            .map(|step| &step.limits)
    }
}

/// Collects problems, stamping each with the file.
#[derive(Debug)]
pub(super) struct Report {
    file: String,
    pub(super) problems: Vec<Problem>,
}

impl Report {
    pub(super) fn push(&mut self, mut problem: Problem) {
        problem.file = self.file.clone();
        self.problems.push(problem);
    }
}

impl Config {
    /// Validates the config and builds the plan the sync engine runs.
    /// Returns every error- and warning-level problem when there is at
    /// least one error; otherwise the plan, with its warnings.
    pub fn build(&self, options: &BuildOptions<'_>) -> Result<Plan, Vec<Problem>> {
        let mut report = Report {
            file: options.file.clone(),
            problems: Vec::new(),
        };
        let systems: BTreeMap<String, SystemPlan> = self
            .systems
            .iter()
            .map(|(name, system)| {
                (
                    name.clone(),
                    build_system(name, system, options, &mut report),
                )
            })
            .collect();

        let mut seen = BTreeSet::new();
        for map in &self.maps {
            if !seen.insert(map.name.as_str()) {
                report.push(
                    Problem::new(
                        ProblemCode::DuplicateMap,
                        format!("more than one map is named `{}`", map.name),
                        "give each map its own name",
                    )
                    .in_map(&map.name)
                    .at_field("name"),
                );
            }
        }

        let mut maps: Vec<Option<MapPlan>> = self
            .maps
            .iter()
            .map(|map| super::checks::build_map(map, self, &systems, options, &mut report))
            .collect();

        self.check_engine(&mut report);
        let map_names: Vec<&str> = self.maps.iter().map(|map| map.name.as_str()).collect();
        let system_names: Vec<&str> = self.systems.keys().map(String::as_str).collect();
        let alerts = super::alerts::build_alerts(
            &self.alerts,
            crate::alerts::Known {
                maps: &map_names,
                systems: &system_names,
            },
            options,
            &mut report,
        );
        let receiver_tls =
            super::receiver::receiver_tls(&self.engine, &options.base_dir, &mut report);
        let order = self.dependency_order(&mut report);
        report
            .problems
            .sort_by_key(|problem| std::cmp::Reverse(problem.severity));
        if report.problems.iter().any(Problem::is_error) {
            return Err(report.problems);
        }
        let maps = order
            .into_iter()
            .filter_map(|index| maps.get_mut(index).and_then(Option::take))
            .collect();
        let mut engine = self.engine.clone();
        engine.data = self.data_dir(&options.base_dir);
        engine.package_key_file = engine
            .package_key_file
            .map(|file| options.base_dir.join(file));
        Ok(Plan {
            systems,
            maps,
            engine,
            receiver_tls,
            alerts,
            warnings: report.problems,
        })
    }

    /// `[engine]`: a batch size the connectors can send as one `$batch`,
    /// a sane number of batches in flight; each system's concurrency
    /// within what the services allow.
    fn check_engine(&self, report: &mut Report) {
        let in_flight = self.engine.batches_in_flight;
        if !(1..=MAX_BATCHES_IN_FLIGHT).contains(&in_flight) {
            report.push(
                Problem::new(
                    ProblemCode::Concurrency,
                    format!("`[engine] batches_in_flight` is {in_flight}"),
                    format!(
                        "set `batches_in_flight` to at least 1 and at most {MAX_BATCHES_IN_FLIGHT}"
                    ),
                )
                .at_field("engine.batches_in_flight"),
            );
        }
        for (name, system) in &self.systems {
            let max = system.max_concurrency;
            if !(1..=MAX_CONCURRENCY).contains(&max) {
                report.push(
                    Problem::new(
                        ProblemCode::Concurrency,
                        format!("system `{name}`: `max_concurrency` is {max}"),
                        format!(
                            "set `max_concurrency` to at least 1 and at most {MAX_CONCURRENCY}, the concurrent requests the service allows one user"
                        ),
                    )
                    .at_field(format!("systems.{name}.max_concurrency")),
                );
            }
            if system.request_limit == 0 {
                report.push(
                    Problem::new(
                        ProblemCode::PollingBudget,
                        format!("system `{name}`: `request_limit` is 0, so it could never be polled"),
                        "set `request_limit` to the requests the service allows the application user in 5 minutes (6000 for Dataverse)",
                    )
                    .at_field(format!("systems.{name}.request_limit")),
                );
            }
        }
        let share = self.engine.polling_share;
        if !(share > 0.0 && share <= 1.0) {
            report.push(
                Problem::new(
                    ProblemCode::PollingBudget,
                    format!("`[engine] polling_share` is {share}"),
                    "set `polling_share` above 0 and at most 1: the share of each system's request limit that polls may use (0.1 is 10%)",
                )
                .at_field("engine.polling_share"),
            );
        }
        if let Some(url) = &self.engine.public_url {
            check_public_url(url, report);
        }
        super::queue::check_queue(&self.engine.queue, report);
        super::log::check_log(&self.engine.log, report);
        let size = self.engine.batch_size;
        let message = match size {
            0 => "`[engine] batch_size` is 0, so no change would ever be written".to_string(),
            1..=MAX_BATCH => return,
            _ => format!("`[engine] batch_size` is {size}, more than one $batch carries"),
        };
        report.push(
            Problem::new(
                ProblemCode::BatchSize,
                message,
                "set `batch_size` to at least 1 and at most 1000: a $batch carries at most 1,000 requests",
            )
            .at_field("engine.batch_size"),
        );
    }

    fn dependency_order(&self, report: &mut Report) -> Vec<usize> {
        let names: Vec<&str> = self.maps.iter().map(|map| map.name.as_str()).collect();
        let mut depends_on: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (index, map) in self.maps.iter().enumerate() {
            for dependency in &map.depends_on {
                match names.iter().position(|name| name == dependency) {
                    Some(target) => depends_on.entry(index).or_default().push(target),
                    None => report.push(
                        Problem::new(
                            ProblemCode::UnknownDependency,
                            format!("`depends_on` names `{dependency}`, which is not a map"),
                            format!("use one of: {}", names.join(", ")),
                        )
                        .in_map(&map.name)
                        .at_field("depends_on"),
                    ),
                }
            }
        }
        match dependency_order(&names, &depends_on) {
            Ok(order) => order,
            Err(cycle) => {
                let first = cycle.first().cloned().unwrap_or_default();
                report.push(
                    Problem::new(
                        ProblemCode::DependencyCycle,
                        format!(
                            "maps depend on each other in a cycle: {}",
                            cycle.join(" → ")
                        ),
                        "remove one `depends_on` entry of the cycle",
                    )
                    .in_map(&first)
                    .at_field("depends_on"),
                );
                Vec::new()
            }
        }
    }
}

fn build_system(
    name: &str,
    system: &SystemConfig,
    options: &BuildOptions<'_>,
    report: &mut Report,
) -> SystemPlan {
    let auth = system
        .auth
        .as_ref()
        .map(|auth| super::auth::build_auth(name, auth, options, report));
    let events_secret = system.events_secret_env.as_ref().map(|variable| {
        let secret = (options.env)(variable).map(Secret::new);
        if secret.is_none() {
            report.push(
                Problem::new(
                    ProblemCode::SecretUnset,
                    format!("system `{name}`: the environment variable `{variable}` is not set"),
                    format!(
                        "set `{variable}` to the shared secret of the data event webhook before the host starts"
                    ),
                )
                .at_field(format!("systems.{name}.events_secret_env")),
            );
        }
        (variable.clone(), secret)
    });
    check_url(name, "url", &system.url, report);
    let ca = system.ca_file.as_ref().and_then(|file| {
        let path = options.base_dir.join(file);
        TrustedCa::read(&path)
            .map_err(|why| {
                report.push(
                    Problem::new(
                        ProblemCode::CaFile,
                        format!("system `{name}`: the CA file {} {why}", path.display()),
                        "name a readable PEM file holding the CA certificate that signed the service's certificate",
                    )
                    .at_field(format!("systems.{name}.ca_file")),
                );
            })
            .ok()
    });
    SystemPlan {
        name: name.to_string(),
        kind: system.kind,
        url: system.url.clone(),
        auth,
        events_secret,
        ca,
        max_concurrency: system.max_concurrency,
        request_limit: system.request_limit,
    }
}

/// Whether `url`'s host is loopback (127.0.0.0/8, ::1, localhost).
pub(super) fn loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|host| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// `[engine] public_url`: where the services post webhooks, so `https://`
/// (the secret travels in a header), or `http://` to a loopback host (the
/// emulators); the receiver's path is appended, so no query or fragment.
fn check_public_url(url: &str, report: &mut Report) {
    let problem = match reqwest::Url::parse(url) {
        Err(error) => format!("`[engine] public_url` is `{url}`, not an absolute URL: {error}"),
        Ok(parsed)
            if parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback(&parsed)) =>
        {
            if parsed.query().is_none() && parsed.fragment().is_none() {
                return;
            }
            format!("`[engine] public_url` is `{url}`, with a query or fragment")
        }
        Ok(parsed) if parsed.scheme() == "http" => format!(
            "`[engine] public_url` is `{url}`, plain HTTP to a host that is not loopback: the webhook secret would cross the network in clear"
        ),
        Ok(parsed) => format!(
            "`[engine] public_url` is `{url}`, a `{}:` URL the services cannot post to",
            parsed.scheme()
        ),
    };
    report.push(
        Problem::new(
            ProblemCode::PublicUrl,
            problem,
            "set `public_url` to the https:// address the services reach `engine.listen` at, such as https://dualwrite.contoso.com (http:// only to 127.0.0.1, ::1 or localhost); the receiver's path /events/{system} is added to it",
        )
        .at_field("engine.public_url"),
    );
}

/// `http://` only to a loopback host (the emulators); anything else must be
/// `https://`, so tokens and rows never cross a network in clear.
pub(super) fn check_url(name: &str, field: &str, url: &str, report: &mut Report) {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return;
    };
    if parsed.scheme() != "http" {
        return;
    }
    if loopback(&parsed) {
        return;
    }
    report.push(
        Problem::new(
            ProblemCode::InsecureUrl,
            format!("system `{name}`: `{field}` is `{url}`, plain HTTP to a host that is not loopback"),
            "use `https://`; plain `http://` is allowed only to 127.0.0.1, ::1 or localhost (the emulators)",
        )
        .at_field(format!("systems.{name}.{field}")),
    );
}
