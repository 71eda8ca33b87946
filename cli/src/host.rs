//! How the commands that drive a running host reach it: the admin API at
//! `--admin URL`, `DUALWRITE_ADMIN_URL`, or the `[engine] admin` address of
//! `-c FILE`, with the token of `DUALWRITE_ADMIN_TOKEN`; or, for the
//! commands that only read, a stopped host's store (`--data DIR`, or the
//! data directory of `-c FILE`).
//!
//! Exit codes mean the same for every such command: 0 done, 2 refused
//! (the host said why), 3 host unreachable, 1 anything else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use dualwrite::admin::TOKEN_ENV;
use dualwrite::checkpoint::Checkpoints;
use dualwrite::config::{PluginRegistry, validate_file_in};
use dualwrite::map::{NoCatalogue, Plan};

/// The operation was refused; the reason was printed.
pub const REFUSED: u8 = 2;
/// The host could not be reached.
pub const UNREACHABLE: u8 = 3;

/// Where the host is.
#[derive(Debug, Args, Clone)]
pub struct HostArgs {
    /// The admin API of the running host, such as http://127.0.0.1:7070
    /// (default: the config's `[engine] admin`).
    #[arg(long, env = "DUALWRITE_ADMIN_URL", value_name = "URL")]
    pub admin: Option<String>,
    /// A CA certificate (PEM) the admin API's HTTPS certificate chains to,
    /// besides the system's.
    #[arg(long, env = "DUALWRITE_ADMIN_CA", value_name = "FILE")]
    pub admin_ca: Option<PathBuf>,
    /// The host's config file: its admin address, and its data directory
    /// when the host is stopped.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A stopped host's data directory (for the commands that only read).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A failure that ends the command with a meaningful exit code.
#[derive(Debug)]
pub enum Failure {
    /// The host refused (HTTP 4xx): its message.
    Refused(String),
    /// The host could not be reached.
    Unreachable(String),
    /// Anything else.
    Other(anyhow::Error),
}

impl Failure {
    /// Prints the failure and gives the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            Failure::Refused(message) => {
                eprintln!("refused: {message}");
                ExitCode::from(REFUSED)
            }
            Failure::Unreachable(message) => {
                eprintln!("error: {message}");
                ExitCode::from(UNREACHABLE)
            }
            Failure::Other(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// The exit code of a command's result: 0, or the failure's, printed.
pub fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure::Other(error)
    }
}

impl HostArgs {
    /// The config's plan, when `-c` is given (validated without a
    /// catalogue: the host validated it against its systems already; its
    /// registry plugins left unresolved, as only its settings are read).
    pub fn plan(&self) -> Result<Option<Plan>, Failure> {
        let Some(path) = &self.config else {
            return Ok(None);
        };
        match validate_file_in(path, &NoCatalogue, PluginRegistry::Unchecked) {
            Ok(plan) => Ok(Some(plan)),
            Err(problems) => {
                let list: Vec<String> = problems
                    .iter()
                    .filter(|p| p.is_error())
                    .map(|p| p.to_string())
                    .collect();
                Err(Failure::Other(anyhow::anyhow!(
                    "{} does not validate:\n{}",
                    path.display(),
                    list.join("\n")
                )))
            }
        }
    }

    /// The admin API's base URL, if one is named.
    pub fn admin_url(&self, plan: Option<&Plan>) -> Option<String> {
        if let Some(url) = &self.admin {
            return Some(url.trim_end_matches('/').to_owned());
        }
        let plan = plan?;
        let addr = plan.engine.admin?;
        let scheme = if plan.receiver_tls.is_some() {
            "https"
        } else {
            "http"
        };
        Some(format!("{scheme}://{addr}"))
    }

    /// A client of the running host's admin API, or a refusal saying how
    /// to name it.
    pub fn client(&self) -> Result<Client, Failure> {
        let plan = self.plan()?;
        let url = self.admin_url(plan.as_ref()).ok_or_else(|| {
            Failure::Refused(
                "name the running host: --admin URL (or DUALWRITE_ADMIN_URL), or -c FILE with [engine] admin".into(),
            )
        })?;
        Client::new(url, self.admin_ca.as_deref())
    }

    /// The data directory of a stopped host, if one is named.
    pub fn data_dir(&self, plan: Option<&Plan>) -> Option<PathBuf> {
        self.data
            .clone()
            .or_else(|| plan.map(|plan| plan.engine.data.clone()))
    }
}

/// A client of one host's admin API.
#[derive(Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the API at `base`, with the token of the environment.
    pub fn new(base: String, ca: Option<&Path>) -> Result<Client, Failure> {
        // A connect timeout for every request; a total one for each
        // request but a followed stream (`Client::stream`).
        let mut builder =
            reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading the CA certificate {}", ca.display()))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            builder = builder.add_root_certificate(certificate);
        }
        Ok(Client {
            base,
            token: std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
            http: builder.build().context("building the HTTP client")?,
        })
    }

    /// `GET path` → the JSON body.
    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with `body` → the JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// `POST path` with `bytes` of `content_type` → the JSON body.
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, Failure> {
        let request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        self.send(request).await
    }

    /// `DELETE path` → the JSON body (`null` for none).
    pub async fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` kept open: the response, its body to be read as it
    /// comes (server-sent events).
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, Failure> {
        let response = self.reach(self.http.get(self.url(path))).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(Self::refusal(response).await)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let response = self
            .reach(request.timeout(std::time::Duration::from_secs(60)))
            .await?;
        if response.status().is_success() {
            return Ok(response.json().await.unwrap_or(Value::Null));
        }
        Err(Self::refusal(response).await)
    }

    async fn refusal(response: reqwest::Response) -> Failure {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the host answered {status}"));
        if status.is_client_error() {
            Failure::Refused(message)
        } else {
            Failure::Other(anyhow::anyhow!("{message}"))
        }
    }

    async fn reach(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let token = self.token.as_deref().ok_or_else(|| {
            Failure::Refused(format!(
                "set {TOKEN_ENV} to the host's admin token to reach {}",
                self.base
            ))
        })?;
        request.bearer_auth(token).send().await.map_err(|error| {
            let reason = std::error::Error::source(&error)
                .map(|source| source.to_string())
                .unwrap_or_else(|| error.to_string());
            Failure::Unreachable(format!(
                "the host's admin API at {} cannot be reached: {reason}; is `dualwrite run` running with [engine] admin set?",
                self.base
            ))
        })
    }
}

/// Runs `work` on a small runtime of its own.
pub fn block_on<T>(work: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?
        .block_on(work)
}

/// Where a read command reads: the running host, or a stopped one's store.
#[derive(Debug)]
pub enum Source {
    /// The admin API of the running host.
    Host(Client),
    /// A stopped host's store, with the config when `-c` named one.
    Store(Checkpoints, Box<Option<Plan>>),
}

/// The running host if it answers, else the store `--data` or `-c` names.
pub fn source(host: &HostArgs) -> Result<Source, Failure> {
    let plan = host.plan()?;
    let url = host.admin_url(plan.as_ref());
    let data = host.data_dir(plan.as_ref());
    match (url, data) {
        (Some(url), data) => {
            let client = Client::new(url, host.admin_ca.as_deref())?;
            // An explicit data directory is read when the host is down.
            let reachable = block_on(async { Ok(client.get("/api/v1/health").await.is_ok()) })?;
            match data {
                Some(data) if !reachable => open_store(&data, plan),
                _ => Ok(Source::Host(client)),
            }
        }
        (None, Some(data)) => open_store(&data, plan),
        (None, None) => Err(Failure::Refused(
            "name the host: --admin URL (or DUALWRITE_ADMIN_URL), -c FILE, or --data DIR of a stopped host".into(),
        )),
    }
}

fn open_store(data: &Path, plan: Option<Plan>) -> Result<Source, Failure> {
    if !data.exists() {
        return Err(Failure::Refused(format!(
            "{} holds no checkpoint store: no host ran there",
            data.display()
        )));
    }
    let store = Checkpoints::open(data).map_err(|error| {
        Failure::Unreachable(format!(
            "cannot read the store in {}: {error}; if a host runs on it, reach it with --admin URL",
            data.display()
        ))
    })?;
    Ok(Source::Store(store, Box::new(plan)))
}
