//! What the tests that run `dualwrite run` between two emulators share:
//! the connectors' credentials of an emulator, the config's two
//! `[systems]` sections (secrets read from `FO_SECRET` and `DV_SECRET`),
//! and a running host with its admin API ([`Host`], token
//! [`ADMIN_TOKEN`]).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dualwrite::connector::Credentials;
use dualwrite_emulators::RunningEmulator;

/// The admin token the hosts of [`Host::start`] run with.
pub const ADMIN_TOKEN: &str = "an-admin-token-for-tests";

/// The emulators' default client, as a connector signs in.
pub fn credentials(emulator: &RunningEmulator) -> Credentials {
    Credentials {
        token_url: emulator.token_url(),
        client_id: "dualwrite".into(),
        client_secret: "dualwrite-secret".into(),
        scope: format!("{}/.default", emulator.url()),
    }
}

/// `[systems.finops]` and `[systems.dataverse]` of a config for these two
/// emulators.
pub fn systems(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    format!(
        r#"
[systems.finops]
kind = "finops"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "FO_SECRET" }}

[systems.dataverse]
kind = "dataverse"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "DV_SECRET" }}
"#,
        finops.service_url(),
        finops.token_url(),
        dataverse.service_url(),
        dataverse.token_url()
    )
}

/// A `dualwrite run` process and the admin URL it printed.
pub struct Host {
    child: Child,
    pub url: String,
}

impl Host {
    pub fn start(config: &Path) -> Host {
        Host::start_with(config, &[])
    }

    /// Started with `env` added to its environment.
    pub fn start_with(config: &Path, env: &[(&str, &str)]) -> Host {
        Host::start_args(config, &[], env)
    }

    /// Started with `args` after `run -c FILE` and `env` added.
    pub fn start_args(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Host {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
            .args(["run", "-c"])
            .arg(config)
            .args(args)
            .env("FO_SECRET", "dualwrite-secret")
            .env("DV_SECRET", "dualwrite-secret")
            .env("DUALWRITE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("DUALWRITE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("dualwrite run starts");
        let stdout = child.stdout.take().expect("stdout");
        let (found, url) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("the admin API is at ") {
                    let _ = found.send(rest.trim_end_matches("/api/v1").to_owned());
                }
            }
        });
        let url = url
            .recv_timeout(Duration::from_secs(60))
            .expect("the host prints its admin API's address");
        Host { child, url }
    }

    /// Whether the process still runs (it never exited or restarted).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `dualwrite map ARGS` against this host: exit code, stdout, stderr.
    pub fn map(&self, args: &[&str]) -> (i32, String, String) {
        map_cli(args, &[("DUALWRITE_ADMIN_URL", &self.url)])
    }

    /// SIGTERM, and waits for a clean stop.
    pub fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        let status = self.child.wait().expect("exits");
        assert!(status.success(), "{status}");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn map_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dualwrite"));
    command
        .arg("map")
        .args(args)
        .env("DUALWRITE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("DUALWRITE_ADMIN_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("dualwrite map runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
