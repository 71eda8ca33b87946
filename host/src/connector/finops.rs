//! [`FinopsConnector`]: the Finance and Operations OData service (`/data`).
//! Every call carries `cross-company=true`, so rows of every legal entity
//! are seen and keys always name their `dataAreaId`.
//!
//! The data entities' OData offers no change feed (no row versions, no
//! deleted rows): the sync engine learns of changes from data events
//! (pushed to its receiver) and from reconciliation, paged reads
//! ([`FinopsConnector::query_page`], only the fields it compares) against
//! the hashes it stored. Page:
//! <https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata>.

use std::sync::Arc;

use reqwest::Method;

use super::batch::{self, BatchMode, BatchPart, WriteOutcome};
use super::dataverse::{link, own_link, query_string, rows_of};
use super::error::{ConnectorError, SystemKind};
use super::transport::{Call, ConnectorOptions, ConnectorStats, Failing, Transport};
use super::{ClientAuth, Key, Query, QueryPage, Row, Write};

/// A Finance and Operations environment. Clones share the token, the cap
/// on requests in flight and the counters.
#[derive(Debug, Clone)]
pub struct FinopsConnector {
    pub(super) transport: Arc<Transport>,
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

    /// Whether the service has answered only transient failures since a
    /// moment (an outage, throttling): since when, and the last one.
    pub fn failing(&self) -> Option<Failing> {
        self.transport.failing()
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
