//! Shared helpers: start an emulator, get a token, send requests.

use dualwrite_emulators::{self as emulator, EmulatorConfig, RunningEmulator, ServiceKind};
use serde_json::Value;

/// A started emulator with a client holding a valid token.
pub struct Harness {
    pub emulator: RunningEmulator,
    pub client: reqwest::Client,
    pub token: String,
}

impl Harness {
    pub async fn start(kind: ServiceKind, config: EmulatorConfig) -> Self {
        let emulator = emulator::start(kind, config)
            .await
            .expect("emulator starts");
        let client = reqwest::Client::new();
        let token = token(&client, &emulator).await;
        Self {
            emulator,
            client,
            token,
        }
    }

    pub async fn dataverse() -> Self {
        Self::start(ServiceKind::Dataverse, empty_config()).await
    }

    pub async fn finops() -> Self {
        Self::start(ServiceKind::Finops, empty_config()).await
    }

    /// A request to `service_url()/path` with the bearer token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/{path}", self.emulator.service_url()))
            .bearer_auth(&self.token)
    }

    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, Value) {
        send_json(self.request(reqwest::Method::GET, path)).await
    }
}

/// No seed, no limits: tests add what they need.
pub fn empty_config() -> EmulatorConfig {
    EmulatorConfig::empty()
}

pub async fn token(client: &reqwest::Client, emulator: &RunningEmulator) -> String {
    let response = client
        .post(emulator.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "dualwrite"),
            ("client_secret", "dualwrite-secret"),
            ("scope", "https://contoso.crm.dynamics.com/.default"),
        ])
        .send()
        .await
        .expect("token request sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("token json");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Asserts the OData error shape and returns the message.
pub fn error_message(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "error body: {body}");
    body["error"]["message"]
        .as_str()
        .expect("error message")
        .to_string()
}

/// Sends `request` and reads the reply: its status and JSON body.
pub async fn send_json(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, Value) {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    (status, response.json().await.expect("json body"))
}
