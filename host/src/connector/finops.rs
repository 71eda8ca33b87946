//! [`FinopsConnector`]: the Finance and Operations OData service (`/data`).
//! Every call carries `cross-company=true`, so rows of every legal entity
//! are seen and keys always name their `dataAreaId`.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

use super::batch::{self, BatchMode, BatchPart, WriteOutcome};
use super::dataverse::{link, own_link, query_string, rows_of};
use super::error::{ConnectorError, SystemKind};
use super::transport::{Call, ConnectorOptions, ConnectorStats, Transport};
use super::{ChangePage, ClientAuth, Deleted, Key, Query, QueryPage, Row, Write};

/// Largest `$changes` page the service returns.
const MAX_CHANGES_PAGE: u32 = 10_000;

/// A Finance and Operations environment. Clones share the token, the cap
/// on requests in flight and the counters.
#[derive(Debug, Clone)]
pub struct FinopsConnector {
    transport: Arc<Transport>,
}

impl FinopsConnector {
    /// A connector for `service_url` (`https://contoso.operations.dynamics.com/data`).
    /// Sends nothing until the first call. `credentials` is a secret
    /// ([`Credentials`](super::Credentials)) or a certificate
    /// ([`CertificateCredentials`](super::CertificateCredentials)).
    pub fn new(
        service_url: &str,
        credentials: impl Into<ClientAuth>,
        options: ConnectorOptions,
    ) -> Self {
        Self {
            transport: Arc::new(Transport::new(
                SystemKind::Finops,
                service_url,
                credentials.into(),
                options,
            )),
        }
    }

    /// Requests, retries, throttling and tokens so far.
    pub fn stats(&self) -> ConnectorStats {
        self.transport.stats()
    }

    /// One page of `entity` across companies; pass `next_link` on.
    pub async fn query_page(
        &self,
        entity: &str,
        query: &Query,
        next_link: Option<&str>,
    ) -> Result<QueryPage, ConnectorError> {
        let url = match next_link {
            Some(link) => own_link(&self.transport, link)?,
            None => {
                let options = query_string(query).replacen('?', "&", 1);
                self.transport
                    .url(&format!("{entity}?cross-company=true{options}"))
            }
        };
        let page_size = self.transport.options.page_size.max(1);
        let call =
            Call::new(Method::GET, url).header("Prefer", format!("odata.maxpagesize={page_size}"));
        let reply = self.transport.send_to(&call, entity, None).await?;
        let body = self.transport.json(&call, &reply)?;
        Ok(QueryPage {
            rows: rows_of(&body),
            next_link: link(&body, "@odata.nextLink"),
        })
    }

    /// Every row of `entity` matching `query`, across companies.
    pub async fn query_all(&self, entity: &str, query: &Query) -> Result<Vec<Row>, ConnectorError> {
        let mut rows = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.query_page(entity, query, next.as_deref()).await?;
            rows.extend(page.rows);
            match page.next_link {
                Some(link) => next = Some(link),
                None => return Ok(rows),
            }
        }
    }

    /// The row of `entity` with full key `key`, or `None`.
    pub async fn get(&self, entity: &str, key: &Key) -> Result<Option<Row>, ConnectorError> {
        let call = Call::new(Method::GET, self.by_key(entity, key));
        let reply = self.transport.send(&call).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        let reply = self.transport.accept(&call, reply, entity, Some(key))?;
        self.transport.json(&call, &reply).map(Some)
    }

    /// Updates the row with full key `key` (`PATCH`), or creates it with the
    /// key's fields (`POST`) when there is none; doing it twice leaves one
    /// row.
    pub async fn upsert(&self, entity: &str, key: &Key, row: &Row) -> Result<(), ConnectorError> {
        let update =
            Call::new(Method::PATCH, self.by_key(entity, key)).json(&without_key(row, key));
        let reply = self.transport.send(&update).await?;
        if reply.status != 404 {
            return self
                .transport
                .accept(&update, reply, entity, Some(key))
                .map(drop);
        }
        self.create(entity, key, row).await
    }

    /// Creates the row with full key `key`; an existing row is an error.
    pub async fn create(&self, entity: &str, key: &Key, row: &Row) -> Result<(), ConnectorError> {
        let call = Call::new(
            Method::POST,
            self.transport.url(&format!("{entity}?cross-company=true")),
        )
        .json(&with_key(row, key));
        self.transport
            .send_to(&call, entity, Some(key))
            .await
            .map(drop)
    }

    /// Deletes the row with full key `key`; `false` when it was already gone.
    pub async fn delete(&self, entity: &str, key: &Key) -> Result<bool, ConnectorError> {
        let call = Call::new(Method::DELETE, self.by_key(entity, key));
        let reply = self.transport.send(&call).await?;
        if reply.status == 404 {
            return Ok(false);
        }
        self.transport
            .accept(&call, reply, entity, Some(key))
            .map(|_| true)
    }

    /// Changes of `entity` after row version `cursor` (`"0"` for all the
    /// change log holds), through `GET /data/{Entity}/$changes?since=N`.
    /// A cursor older than the retention (410) gives an empty page with
    /// `reset` set and the service's latest row version as `next_cursor`:
    /// read the entity in full, then poll from there.
    pub async fn changes(&self, entity: &str, cursor: &str) -> Result<ChangePage, ConnectorError> {
        let since: u64 = cursor.parse().map_err(|_| ConnectorError::Invalid {
            system: SystemKind::Finops,
            detail: format!(
                "the finops cursor '{cursor}' is not a row version: pass the next_cursor of an earlier page, or \"0\""
            ),
        })?;
        let top = self.transport.options.page_size.clamp(1, MAX_CHANGES_PAGE);
        let call = Call::new(
            Method::GET,
            self.transport
                .url(&format!("{entity}/$changes?since={since}&top={top}")),
        );
        let reply = self.transport.send(&call).await?;
        if reply.status == 410 {
            let gone = self.transport.json(&call, &reply).ok();
            let latest = gone
                .as_ref()
                .and_then(|body| body.get("LatestRowVersion"))
                .and_then(Value::as_u64);
            if let Some(latest) = latest {
                return Ok(ChangePage {
                    reset: true,
                    next_cursor: latest.to_string(),
                    ..ChangePage::default()
                });
            }
        }
        let reply = self.transport.accept(&call, reply, entity, None)?;
        let body = self.transport.json(&call, &reply)?;
        let protocol = |detail: String| ConnectorError::Protocol {
            system: SystemKind::Finops,
            url: call.url.clone(),
            detail,
        };
        let latest = body
            .get("LatestRowVersion")
            .and_then(Value::as_u64)
            .ok_or_else(|| protocol("LatestRowVersion is missing".into()))?;
        let entries = body
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| protocol("value is missing".into()))?;
        // The log holds every version; keep each key's last operation.
        let mut last: Vec<(Key, Option<Row>, String, String)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for entry in entries {
            let key = entry
                .get("Key")
                .and_then(Value::as_object)
                .ok_or_else(|| protocol("a change has no Key".into()))
                .and_then(|k| Key::from_json(k).map_err(protocol))?;
            let row = match entry.get("Operation").and_then(Value::as_str) {
                Some("Delete") => None,
                Some("Upsert") => Some(
                    entry
                        .get("Row")
                        .and_then(Value::as_object)
                        .cloned()
                        .ok_or_else(|| protocol("an upsert has no Row".into()))?,
                ),
                other => return Err(protocol(format!("unknown operation {other:?}"))),
            };
            let version = entry
                .get("RowVersion")
                .map(|v| v.to_string())
                .unwrap_or_default();
            let time = entry
                .get("ChangedAt")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let id = key.segment();
            match index.get(&id) {
                Some(&i) => {
                    last[i].1 = row;
                    last[i].2 = version;
                    last[i].3 = time;
                }
                None => {
                    index.insert(id, last.len());
                    last.push((key, row, version, time));
                }
            }
        }
        let mut page = ChangePage {
            next_cursor: latest.to_string(),
            more: entries.len() >= top as usize,
            ..ChangePage::default()
        };
        for (key, row, version, time) in last {
            match row {
                Some(row) => {
                    page.upserts.push(row);
                    page.upsert_versions.push(version);
                    page.upsert_times.push(time);
                }
                None => {
                    page.deletes.push(Deleted::Key(key));
                    page.delete_versions.push(version);
                    page.delete_times.push(time);
                }
            }
        }
        Ok(page)
    }

    /// Sends up to [`super::MAX_BATCH`] writes in one `$batch`; an outcome
    /// per write, in order. An upsert is a `PATCH` by key and an insert a
    /// `POST`; with [`BatchMode::ContinueOnError`] the upserts that found no
    /// row are created, and the inserts the service refused are sent as
    /// updates, in a second batch (an insert whose update finds no row keeps
    /// the create's error). In an atomic batch a missing row fails the
    /// change set (status 404): create new rows apart. A delete of a row
    /// already gone is applied (status 404).
    pub async fn write_batch(
        &self,
        writes: &[Write],
        mode: BatchMode,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let parts: Vec<BatchPart> = writes
            .iter()
            .map(|w| match w {
                Write::Upsert { table, key, row } => self.update(table, key, row),
                Write::Insert { table, key, row } => self.create_part(table, key, row),
                Write::Delete { table, key } => BatchPart {
                    method: Method::DELETE,
                    url: self.by_key(table, key),
                    headers: Vec::new(),
                    body: None,
                },
            })
            .collect();
        let mut outcomes = batch::send(&self.transport, &parts, mode).await?;
        let again = mode == BatchMode::ContinueOnError;
        let mut retried = Vec::new();
        let mut retry_parts = Vec::new();
        for (i, (write, outcome)) in writes.iter().zip(&mut outcomes).enumerate() {
            let failed = match outcome {
                WriteOutcome::Failed { status, .. } => Some(*status),
                _ => None,
            };
            match write {
                Write::Delete { .. } if failed == Some(404) => {
                    *outcome = WriteOutcome::Applied {
                        status: 404,
                        entity_id: None,
                    }
                }
                Write::Upsert { table, key, row } if failed == Some(404) && again => {
                    retried.push(i);
                    retry_parts.push(self.create_part(table, key, row));
                }
                Write::Insert { table, key, row }
                    if matches!(failed, Some(400 | 409 | 412)) && again =>
                {
                    retried.push(i);
                    retry_parts.push(self.update(table, key, row));
                }
                _ => {}
            }
        }
        if !retry_parts.is_empty() {
            let second = batch::send(&self.transport, &retry_parts, mode).await?;
            for (i, outcome) in retried.into_iter().zip(second) {
                let insert_found_nothing = matches!(writes[i], Write::Insert { .. })
                    && matches!(outcome, WriteOutcome::Failed { status: 404, .. });
                if !insert_found_nothing {
                    outcomes[i] = outcome;
                }
            }
        }
        Ok(outcomes)
    }

    /// `PATCH` of the row with `key` (the key's fields left out).
    fn update(&self, entity: &str, key: &Key, row: &Row) -> BatchPart {
        BatchPart {
            method: Method::PATCH,
            url: self.by_key(entity, key),
            headers: Vec::new(),
            body: Some(without_key(row, key)),
        }
    }

    /// `POST` of a new row with `key`.
    fn create_part(&self, entity: &str, key: &Key, row: &Row) -> BatchPart {
        BatchPart {
            method: Method::POST,
            url: self.transport.url(&format!("{entity}?cross-company=true")),
            headers: Vec::new(),
            body: Some(with_key(row, key)),
        }
    }

    fn by_key(&self, entity: &str, key: &Key) -> String {
        self.transport
            .url(&format!("{entity}{key}?cross-company=true"))
    }
}

/// The row without the key's fields (an update may not send them changed).
fn without_key(row: &Row, key: &Key) -> Row {
    row.iter()
        .filter(|(field, _)| !key.parts.iter().any(|(k, _)| k == *field))
        .map(|(f, v)| (f.clone(), v.clone()))
        .collect()
}

/// The row with the key's fields first.
fn with_key(row: &Row, key: &Key) -> Row {
    let mut out = key.to_json();
    for (field, value) in row {
        out.entry(field.clone()).or_insert_with(|| value.clone());
    }
    out
}

impl FinopsConnector {
    /// A harmless read: at most one row of `entity` across companies, only
    /// the `select`ed fields (`$top=1`, documented for the data entities:
    /// <https://learn.microsoft.com/en-us/dynamics365/fin-ops-core/dev-itpro/data-entities/odata>).
    /// Refused reads come back as [`ConnectorError::Rejected`] (401, 403).
    pub async fn read_one(
        &self,
        entity: &str,
        select: &[String],
    ) -> Result<Option<Row>, ConnectorError> {
        let query = Query {
            select: select.to_vec(),
            filter: None,
        };
        let options = query_string(&query).replacen('?', "&", 1);
        let url = self
            .transport
            .url(&format!("{entity}?cross-company=true&$top=1{options}"));
        let call = Call::new(Method::GET, url);
        let reply = self.transport.send_to(&call, entity, None).await?;
        let body = self.transport.json(&call, &reply)?;
        Ok(rows_of(&body).into_iter().next())
    }
}
