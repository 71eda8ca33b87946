//! One connected system as the engine sees it: the connector of its kind,
//! and (for Dataverse) the resolver of lookups: a referenced row's key
//! value to its id and back, cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::connector::{
    BatchMode, ChangePage, ConnectorError, ConnectorOptions, DataverseConnector, FinopsConnector,
    Key, Query, QueryPage, Write, WriteOutcome,
};
use crate::map::{SystemKind, SystemPlan};

use super::SyncError;
use super::shape::Row;

/// The connector of one system.
#[derive(Debug, Clone)]
pub enum Connector {
    /// Dataverse Web API.
    Dataverse(DataverseConnector),
    /// Finance and Operations OData.
    Finops(FinopsConnector),
}

/// A connected system.
#[derive(Debug, Clone)]
pub struct System {
    /// Its name in the config.
    pub name: String,
    /// Its connector.
    pub connector: Connector,
    ids: Arc<Mutex<HashMap<String, String>>>,
    values: Arc<Mutex<HashMap<String, Value>>>,
}

/// The path of each service's API under the environment URL.
fn service_url(plan: &SystemPlan) -> String {
    let url = plan.url.trim_end_matches('/');
    match plan.kind {
        SystemKind::Dataverse if !url.contains("/api/data/") => format!("{url}/api/data/v9.2"),
        SystemKind::Finops if !url.ends_with("/data") => format!("{url}/data"),
        _ => url.to_owned(),
    }
}

impl System {
    /// Whether the service fails every attempt now: since when, and how.
    pub fn failing(&self) -> Option<crate::connector::Failing> {
        match &self.connector {
            Connector::Dataverse(connector) => connector.failing(),
            Connector::Finops(connector) => connector.failing(),
        }
    }

    /// A system for `plan`; sends nothing yet.
    pub fn connect(plan: &SystemPlan, mut options: ConnectorOptions) -> Result<System, SyncError> {
        if plan.ca.is_some() {
            options.ca = plan.ca.clone();
        }
        // The config's `max_concurrency` (validated: 1 to 52) is the limit.
        options.max_in_flight = plan.max_concurrency;
        let auth = plan.auth.as_ref().ok_or_else(|| SyncError::Setup {
            detail: format!(
                "system `{}` has no `auth`: add `auth = {{ token_url, client_id, client_secret_env }}`",
                plan.name
            ),
        })?;
        // The scope is the environment's root with `/.default`, whether the
        // configured URL names the root or the service path.
        let (root, _) = crate::preflight::service_url(plan.kind, &plan.url);
        let credentials = auth
            .client_auth(&plan.name, format!("{root}/.default"))
            .map_err(|detail| SyncError::Setup { detail })?;
        let url = service_url(plan);
        let connector = match plan.kind {
            SystemKind::Dataverse => {
                Connector::Dataverse(DataverseConnector::new(&url, credentials, options))
            }
            SystemKind::Finops => {
                Connector::Finops(FinopsConnector::new(&url, credentials, options))
            }
        };
        Ok(System {
            name: plan.name.clone(),
            connector,
            ids: Arc::default(),
            values: Arc::default(),
        })
    }

    /// Sends `writes` in one batch, each write on its own.
    pub async fn write_batch(&self, writes: &[Write]) -> Result<Vec<WriteOutcome>, ConnectorError> {
        match &self.connector {
            Connector::Dataverse(c) => c.write_batch(writes, BatchMode::ContinueOnError).await,
            Connector::Finops(c) => c.write_batch(writes, BatchMode::ContinueOnError).await,
        }
    }

    /// Dataverse: changes after `cursor`; `None` starts tracking (every
    /// row). finops documents no change feed: its changes come from data
    /// events and reconciliation ([`System::query_page`]), so asking it is
    /// refused.
    pub async fn changes(
        &self,
        table: &str,
        select: &[String],
        cursor: Option<&str>,
    ) -> Result<ChangePage, ConnectorError> {
        match (&self.connector, cursor) {
            (Connector::Dataverse(c), Some(cursor)) => c.changes(cursor).await,
            (Connector::Dataverse(c), None) => c.start_tracking(table, select).await,
            (Connector::Finops(_), _) => Err(ConnectorError::Invalid {
                system: crate::connector::SystemKind::Finops,
                detail: format!(
                    "finops offers no change feed for {table}: its changes are read by reconciliation and data events"
                ),
            }),
        }
    }

    /// One page of `table` matching `query`; pass `next_link` on (finops:
    /// across companies).
    pub async fn query_page(
        &self,
        table: &str,
        query: &Query,
        next_link: Option<&str>,
    ) -> Result<QueryPage, ConnectorError> {
        match &self.connector {
            Connector::Dataverse(c) => c.query_page(table, query, next_link).await,
            Connector::Finops(c) => c.query_page(table, query, next_link).await,
        }
    }

    /// The row of `table` with `key`.
    pub async fn get(&self, table: &str, key: &Key) -> Result<Option<Row>, ConnectorError> {
        match &self.connector {
            Connector::Dataverse(c) => c.get(table, key).await,
            Connector::Finops(c) => c.get(table, key).await,
        }
    }

    /// Every row of `table` matching `query`.
    pub async fn query_all(&self, table: &str, query: &Query) -> Result<Vec<Row>, ConnectorError> {
        match &self.connector {
            Connector::Dataverse(c) => c.query_all(table, query).await,
            Connector::Finops(c) => c.query_all(table, query).await,
        }
    }

    /// Dataverse: the id of the row of `table` with alternate key `key`, or
    /// `None` when there is none (yet). Found ids are cached.
    pub async fn id_of(&self, table: &str, key: &Key) -> Result<Option<String>, ConnectorError> {
        let slot = format!("{table}{key}");
        if let Some(id) = lock(&self.ids).get(&slot) {
            return Ok(Some(id.clone()));
        }
        let Some(row) = self.get(table, key).await? else {
            return Ok(None);
        };
        let id = row
            .get(&primary_id(table))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(id) = &id {
            lock(&self.ids).insert(slot, id.clone());
        }
        Ok(id)
    }

    /// Dataverse: the row of `table` with id `id`, or `None`.
    pub async fn row_by_id(&self, table: &str, id: &str) -> Result<Option<Row>, ConnectorError> {
        match (&self.connector, uuid::Uuid::parse_str(id)) {
            (Connector::Dataverse(c), Ok(guid)) => c.get_by_id(table, guid).await,
            _ => Ok(None),
        }
    }

    /// Forgets the cached ids: a write was refused, perhaps because a
    /// referenced row was deleted and made again under a new id.
    pub fn forget_ids(&self) {
        lock(&self.ids).clear();
    }

    /// Dataverse: `field` of the row of `table` with id `id` (`Null` when
    /// the row is gone). Cached: a referenced row's key rarely changes.
    pub async fn value_of(
        &self,
        table: &str,
        id: &str,
        field: &str,
    ) -> Result<Value, ConnectorError> {
        let slot = format!("{table}({id})/{field}");
        if let Some(value) = lock(&self.values).get(&slot) {
            return Ok(value.clone());
        }
        let Ok(guid) = uuid::Uuid::parse_str(id) else {
            return Ok(Value::Null);
        };
        let row = match &self.connector {
            Connector::Dataverse(c) => c.get_by_id(table, guid).await?,
            Connector::Finops(_) => None,
        };
        let Some(row) = row else {
            return Ok(Value::Null);
        };
        let value = row.get(field).cloned().unwrap_or(Value::Null);
        lock(&self.values).insert(slot, value.clone());
        Ok(value)
    }
}

/// The primary id column of a Dataverse entity set, by the platform's
/// naming: the logical name (the set's singular) followed by `id`.
pub fn primary_id(set: &str) -> String {
    let singular = if let Some(stem) = set.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = set.strip_suffix("sses") {
        format!("{stem}ss")
    } else if let Some(stem) = set.strip_suffix('s') {
        stem.to_owned()
    } else {
        set.to_owned()
    };
    format!("{singular}id")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::primary_id;

    #[test]
    fn primary_ids_follow_the_naming() {
        assert_eq!(primary_id("accounts"), "accountid");
        assert_eq!(primary_id("cdm_companies"), "cdm_companyid");
        assert_eq!(primary_id("transactioncurrencies"), "transactioncurrencyid");
        assert_eq!(primary_id("msdyn_customergroups"), "msdyn_customergroupid");
        assert_eq!(primary_id("msdyn_paymentterms"), "msdyn_paymenttermid");
    }
}
