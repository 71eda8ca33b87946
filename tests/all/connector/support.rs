//! Shared helpers of the connector tests: connectors pointed at an
//! in-process emulator, with short retry settings so tests stay fast.

use std::time::Duration;

use dualwrite::connector::{
    ConnectorOptions, Credentials, DataverseConnector, FinopsConnector, RetryPolicy, Row,
};
use dualwrite_emulators::{self as emulator, EmulatorConfig, RunningEmulator, ServiceKind};
use serde_json::Value;

pub fn credentials(emulator: &RunningEmulator) -> Credentials {
    Credentials {
        token_url: emulator.token_url(),
        client_id: "dualwrite".into(),
        client_secret: "dualwrite-secret".into(),
        scope: format!("{}/.default", emulator.url()),
    }
}

/// Quick retries: tests wait milliseconds, not seconds, unless the service
/// asks for more with `Retry-After`.
pub fn fast_options() -> ConnectorOptions {
    ConnectorOptions {
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            budget: Duration::from_secs(5),
        },
        request_timeout: Duration::from_secs(30),
        ..ConnectorOptions::default()
    }
}

pub async fn start(kind: ServiceKind, config: EmulatorConfig) -> RunningEmulator {
    emulator::start(kind, config)
        .await
        .expect("emulator starts")
}

pub fn dataverse(emulator: &RunningEmulator, options: ConnectorOptions) -> DataverseConnector {
    DataverseConnector::new(&emulator.service_url(), credentials(emulator), options)
}

pub fn finops(emulator: &RunningEmulator, options: ConnectorOptions) -> FinopsConnector {
    FinopsConnector::new(&emulator.service_url(), credentials(emulator), options)
}

/// Serves `router` on `127.0.0.1:0`; answers its address.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A row from a JSON object literal.
pub fn row(value: Value) -> Row {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}
