//! Pre-commit hooks: per table, an URL the emulator calls with the pending
//! change before it commits a write. A 2xx answer lets the write commit; any
//! other answer, or no answer, fails the write with the hook's message (this
//! is how live, synchronous dual-write behaves).
//!
//! A hook stands for a synchronous plug-in of the service. A Dataverse
//! plug-in fails a write with `InvalidPluginExecutionException`, whose
//! `PluginHttpStatusCode` sets the HTTP status of the answer
//! (<https://learn.microsoft.com/dotnet/api/microsoft.xrm.sdk.pluginhttpstatuscode>):
//! the Dataverse emulator answers a refused write with the hook's status when
//! it is one of those ([`PLUGIN_STATUSES`]), else 400; the finops emulator
//! always with 400.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use super::http::ApiError;

/// The HTTP statuses of `PluginHttpStatusCode`, which a Dataverse plug-in
/// may fail a write with (`NotSet`, 0, aside).
pub const PLUGIN_STATUSES: &[u16] = &[
    400, 401, 403, 404, 405, 408, 409, 410, 412, 413, 417, 424, 429, 500, 502, 503, 504,
];

/// The hooks of one emulator.
#[derive(Debug)]
pub struct Hooks {
    urls: Mutex<HashMap<String, String>>,
    client: reqwest::Client,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            urls: Mutex::new(HashMap::new()),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }
}

impl Hooks {
    /// Sets (or with `None` removes) the hook of a table.
    pub fn set(&self, table: &str, url: Option<String>) {
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        match url {
            Some(u) => urls.insert(table.to_string(), u),
            None => urls.remove(table),
        };
    }

    /// The hooks in force, by table.
    pub fn all(&self) -> HashMap<String, String> {
        self.urls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Calls the hook of `table` (if any) with the pending change. A refusal
    /// fails the write with error `code` and the hook's status when it is one
    /// of `statuses`, else with 400.
    pub async fn check(
        &self,
        table: &str,
        change: &Value,
        code: &str,
        statuses: &[u16],
    ) -> Result<(), ApiError> {
        let url = self
            .urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
            .cloned();
        let Some(url) = url else { return Ok(()) };
        let refuse = |m: String| ApiError::new(StatusCode::BAD_REQUEST, code, m);
        let response = self
            .client
            .post(&url)
            .json(change)
            .send()
            .await
            .map_err(|e| refuse(format!("the pre-commit hook of {table} at {url} could not be reached, so the write was not committed: {e}")))?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or(text);
        let answer = match statuses.contains(&status.as_u16()) {
            true => status,
            false => StatusCode::BAD_REQUEST,
        };
        Err(ApiError::new(
            answer,
            code,
            format!("the pre-commit hook of {table} refused the write ({status}): {message}"),
        ))
    }
}
