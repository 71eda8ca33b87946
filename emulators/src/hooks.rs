//! Pre-commit hooks: per table, an URL the emulator calls with the pending
//! change before it commits a write. A 2xx answer lets the write commit; any
//! other answer, or no answer, fails the write with the hook's message (this
//! is how live, synchronous dual-write behaves).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use super::http::ApiError;

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

    /// Calls the hook of `table` (if any) with the pending change.
    pub async fn check(&self, table: &str, change: &Value, code: &str) -> Result<(), ApiError> {
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
        Err(refuse(format!(
            "the pre-commit hook of {table} refused the write ({status}): {message}"
        )))
    }
}
