//! `dualwrite emulate dataverse|finops`: runs an emulator until Ctrl-C,
//! over HTTPS with `--tls` (it prints the CA file to trust); with
//! `--client-certificate` the demo client may authenticate with that
//! certificate's client assertions.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use dualwrite_emulators::{
    self as emulator, ClientCredentials, EmulatorConfig, FaultConfig, ProtectionLimits, Seed,
    ServiceKind,
};

/// Which service to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmulatedService {
    /// Dataverse Web API.
    Dataverse,
    /// Finance and Operations OData.
    Finops,
}

/// Seed choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedArg {
    /// Demo companies, customers, vendors, products.
    Demo,
    /// An empty service.
    None,
}

/// Arguments of `dualwrite emulate`.
#[derive(Debug, clap::Args)]
pub struct EmulateArgs {
    /// The service to emulate.
    #[arg(value_enum)]
    pub service: EmulatedService,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Data directory (kept across restarts); a temporary one when absent.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seed data for an empty store.
    #[arg(long, value_enum, default_value = "demo")]
    pub seed: SeedArg,
    /// Generate this many extra customers, deterministically.
    #[arg(long, default_value_t = 0)]
    pub rows: usize,
    /// Metadata file (TOML) with custom tables.
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// Turn service protection limits off.
    #[arg(long, conflicts_with_all = ["requests_per_window", "max_concurrent"])]
    pub no_limits: bool,
    /// Requests allowed per window before 429 (0: unlimited).
    #[arg(long, default_value_t = 6000)]
    pub requests_per_window: u32,
    /// Length of the protection window, in seconds.
    #[arg(long, default_value_t = 300)]
    pub window_seconds: u64,
    /// Requests allowed in flight at once before 429 (0: unlimited).
    #[arg(long, default_value_t = 52)]
    pub max_concurrent: u32,
    /// Added latency on every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests (0 to 1) answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_share: f64,
    /// Share of requests (0 to 1) answered 429.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_share: f64,
    /// Share of responses (0 to 1) whose connection drops mid-body.
    #[arg(long, default_value_t = 0.0)]
    pub drop_share: f64,
    /// Start with a full outage of this many seconds.
    #[arg(long, default_value_t = 0)]
    pub outage_seconds: u64,
    /// Serve HTTPS with a certificate signed by a CA made at start, and
    /// print the path of the CA's PEM file (for `ca_file`).
    #[arg(long)]
    pub tls: bool,
    /// A PEM certificate registered for the demo client `dualwrite`: a
    /// client assertion signed with its private key gets a token (the
    /// certificate credential). Repeat for more than one.
    #[arg(long = "client-certificate", value_name = "PEM")]
    pub client_certificates: Vec<PathBuf>,
}

/// Runs the emulator until Ctrl-C.
pub fn run(args: EmulateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async move {
        let kind = match args.service {
            EmulatedService::Dataverse => ServiceKind::Dataverse,
            EmulatedService::Finops => ServiceKind::Finops,
        };
        let mut client = ClientCredentials::default();
        for file in &args.client_certificates {
            let pem = std::fs::read_to_string(file).with_context(|| {
                format!("could not read the client certificate {}", file.display())
            })?;
            client.certificates.push(pem);
        }
        let config = EmulatorConfig {
            listen: args.listen,
            data_dir: args.data,
            seed: match args.seed {
                SeedArg::Demo => Seed::Demo,
                SeedArg::None => Seed::None,
            },
            rows: args.rows,
            metadata_file: args.metadata,
            limits: if args.no_limits {
                ProtectionLimits::UNLIMITED
            } else {
                ProtectionLimits {
                    requests_per_window: args.requests_per_window,
                    window_seconds: args.window_seconds,
                    max_concurrent: args.max_concurrent,
                }
            },
            faults: FaultConfig {
                latency_ms: args.latency_ms,
                error_share: args.error_share,
                throttle_share: args.throttle_share,
                drop_share: args.drop_share,
                outage_seconds: args.outage_seconds,
            },
            tls: args.tls,
            clients: vec![client],
            ..EmulatorConfig::default()
        };
        let running = emulator::start(kind, config)
            .await
            .context("could not start the emulator")?;
        println!("{}", running.service_url());
        println!(
            "token endpoint: {} (client dualwrite / dualwrite-secret)",
            running.token_url()
        );
        for file in &args.client_certificates {
            println!("client certificate of dualwrite: {}", file.display());
        }
        if let Some(ca_file) = running.ca_file() {
            println!("CA certificate: {}", ca_file.display());
        }
        tokio::signal::ctrl_c()
            .await
            .context("could not wait for ctrl-c")?;
        running
            .shutdown()
            .await
            .context("could not stop the emulator cleanly")?;
        Ok(())
    })
}
