//! [`DataverseConnector`]: the Dataverse Web API (`/api/data/v9.2`).

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

use super::batch::{self, BatchMode, BatchPart, WriteOutcome};
use super::error::{ConnectorError, SystemKind};
use super::transport::{Call, ConnectorOptions, ConnectorStats, Failing, Transport};
use super::{ChangePage, ClientAuth, Deleted, Key, Query, QueryPage, Row, Write};

/// A Dataverse environment. Clones share the token, the cap on requests in
/// flight and the counters.
#[derive(Debug, Clone)]
pub struct DataverseConnector {
    pub(super) transport: Arc<Transport>,
}

impl DataverseConnector {
    /// A connector for `service_url` (`https://org.crm.dynamics.com/api/data/v9.2`).
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
                SystemKind::Dataverse,
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

    /// One page of `table` matching `query`; pass the page's `next_link` to
    /// read the next one.
    pub async fn query_page(
        &self,
        table: &str,
        query: &Query,
        next_link: Option<&str>,
    ) -> Result<QueryPage, ConnectorError> {
        let url = match next_link {
            Some(link) => self.own_link(link)?,
            None => self
                .transport
                .url(&format!("{table}{}", query_string(query))),
        };
        let call = Call::new(Method::GET, url).header("Prefer", self.page_preference());
        let reply = self.transport.send_to(&call, table, None).await?;
        let body = self.transport.json(&call, &reply)?;
        Ok(QueryPage {
            rows: rows_of(&body),
            next_link: link(&body, "@odata.nextLink"),
        })
    }

    /// Every row of `table` matching `query`, following `@odata.nextLink`.
    pub async fn query_all(&self, table: &str, query: &Query) -> Result<Vec<Row>, ConnectorError> {
        let mut rows = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.query_page(table, query, next.as_deref()).await?;
            rows.extend(page.rows);
            match page.next_link {
                Some(link) => next = Some(link),
                None => return Ok(rows),
            }
        }
    }

    /// Starts change tracking on `table`: the first page of its rows (all
    /// upserts) and a cursor; follow it with [`DataverseConnector::changes`]
    /// until `more` is false, then poll it. Filters are not allowed with
    /// change tracking; the engine filters captured rows itself.
    pub async fn start_tracking(
        &self,
        table: &str,
        select: &[String],
    ) -> Result<ChangePage, ConnectorError> {
        let query = Query {
            select: select.to_vec(),
            filter: None,
        };
        let url = self
            .transport
            .url(&format!("{table}{}", query_string(&query)));
        self.change_page(url, table).await
    }

    /// The changes after `cursor` (a link from an earlier [`ChangePage`]).
    /// An expired delta link is a [`ConnectorError::Rejected`] with status
    /// 400: start tracking again.
    pub async fn changes(&self, cursor: &str) -> Result<ChangePage, ConnectorError> {
        let url = self.own_link(cursor)?;
        self.change_page(url, "").await
    }

    async fn change_page(&self, url: String, table: &str) -> Result<ChangePage, ConnectorError> {
        let call = Call::new(Method::GET, url).header(
            "Prefer",
            format!("odata.track-changes,{}", self.page_preference()),
        );
        let reply = self.transport.send_to(&call, table, None).await?;
        let body = self.transport.json(&call, &reply)?;
        let mut page = ChangePage::default();
        for row in rows_of(&body) {
            let deleted = row
                .get("@odata.context")
                .and_then(Value::as_str)
                .is_some_and(|c| c.ends_with("$deletedEntity"));
            match (deleted, row.get("id").and_then(Value::as_str)) {
                (true, Some(id)) => {
                    page.deletes.push(Deleted::Id(id.to_string()));
                    page.delete_versions.push(format!("deleted:{id}"));
                    page.delete_times.push(String::new());
                }
                _ => {
                    let version = match row.get("versionnumber") {
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::String(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let time = row
                        .get("modifiedon")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    page.upserts.push(row);
                    page.upsert_versions.push(version);
                    page.upsert_times.push(time);
                }
            }
        }
        if let Some(next) = link(&body, "@odata.nextLink") {
            page.next_cursor = next;
            page.more = true;
        } else if let Some(delta) = link(&body, "@odata.deltaLink") {
            page.next_cursor = delta;
        } else {
            return Err(ConnectorError::Protocol {
                system: SystemKind::Dataverse,
                url: call.url,
                detail: "a change tracking page has neither @odata.nextLink nor @odata.deltaLink"
                    .into(),
            });
        }
        Ok(page)
    }

    /// The row of `table` with `key`, or `None`.
    pub async fn get(&self, table: &str, key: &Key) -> Result<Option<Row>, ConnectorError> {
        let call = Call::new(Method::GET, self.transport.url(&format!("{table}{key}")));
        let reply = self.transport.send(&call).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        let reply = self.transport.accept(&call, reply, table, Some(key))?;
        self.transport.json(&call, &reply).map(Some)
    }

    /// The row of `table` with primary id `id`, or `None`.
    pub async fn get_by_id(
        &self,
        table: &str,
        id: uuid::Uuid,
    ) -> Result<Option<Row>, ConnectorError> {
        let call = Call::new(Method::GET, self.transport.url(&format!("{table}({id})")));
        let reply = self.transport.send(&call).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        let reply = self.transport.accept(&call, reply, table, None)?;
        self.transport.json(&call, &reply).map(Some)
    }

    /// Creates or updates the row of `table` with alternate key `key`
    /// (`PATCH table(key='v')`); doing it twice leaves one row.
    pub async fn upsert(&self, table: &str, key: &Key, row: &Row) -> Result<(), ConnectorError> {
        let call = Call::new(Method::PATCH, self.transport.url(&format!("{table}{key}"))).json(row);
        self.transport
            .send_to(&call, table, Some(key))
            .await
            .map(drop)
    }

    /// Deletes the row of `table` with `key`; `false` when it was already gone.
    pub async fn delete(&self, table: &str, key: &Key) -> Result<bool, ConnectorError> {
        let call = Call::new(Method::DELETE, self.transport.url(&format!("{table}{key}")));
        let reply = self.transport.send(&call).await?;
        if reply.status == 404 {
            return Ok(false);
        }
        self.transport
            .accept(&call, reply, table, Some(key))
            .map(|_| true)
    }

    /// Sets a lookup: `navigation@odata.bind = "/set(key)"`.
    pub fn bind(row: &mut Row, navigation: &str, set: &str, key: &Key) {
        row.insert(
            format!("{navigation}@odata.bind"),
            Value::String(format!("/{set}{key}")),
        );
    }

    /// Sends up to [`super::MAX_BATCH`] writes in one `$batch`; an outcome
    /// per write, in order. A delete of a row already gone is applied
    /// (status 404).
    pub async fn write_batch(
        &self,
        writes: &[Write],
        mode: BatchMode,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let parts: Vec<BatchPart> = writes
            .iter()
            .map(|w| {
                let url = self.transport.url(&format!("{}{}", w.table(), w.key()));
                match w {
                    Write::Upsert { row, .. } | Write::Insert { row, .. } => BatchPart {
                        method: Method::PATCH,
                        url,
                        headers: Vec::new(),
                        body: Some(row.clone()),
                    },
                    Write::Delete { .. } => BatchPart {
                        method: Method::DELETE,
                        url,
                        headers: Vec::new(),
                        body: None,
                    },
                }
            })
            .collect();
        let mut outcomes = batch::send(&self.transport, &parts, mode).await?;
        for (write, outcome) in writes.iter().zip(&mut outcomes) {
            if let (Write::Delete { .. }, WriteOutcome::Failed { status: 404, .. }) =
                (write, &outcome)
            {
                *outcome = WriteOutcome::Applied {
                    status: 404,
                    entity_id: None,
                };
            }
        }
        Ok(outcomes)
    }

    fn page_preference(&self) -> String {
        format!(
            "odata.maxpagesize={}",
            self.transport.options.page_size.max(1)
        )
    }

    /// A link the service gave, refused unless it points back at the
    /// service (the bearer token goes with it).
    fn own_link(&self, link: &str) -> Result<String, ConnectorError> {
        own_link(&self.transport, link)
    }
}

/// `?$select=…&$filter=…`, or nothing.
pub(crate) fn query_string(query: &Query) -> String {
    let mut options = Vec::new();
    if !query.select.is_empty() {
        options.push(format!("$select={}", encode(&query.select.join(","))));
    }
    if let Some(filter) = &query.filter {
        options.push(format!("$filter={}", encode(filter)));
    }
    if options.is_empty() {
        String::new()
    } else {
        format!("?{}", options.join("&"))
    }
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub(crate) fn own_link(transport: &Transport, link: &str) -> Result<String, ConnectorError> {
    let root = format!("{}/", transport.service_url);
    if link.starts_with(&root) {
        Ok(link.to_string())
    } else {
        Err(ConnectorError::Invalid {
            system: transport.system,
            detail: format!(
                "the link {link} does not point into {}: pass a cursor this connector returned",
                transport.service_url
            ),
        })
    }
}

pub(crate) fn rows_of(body: &Row) -> Vec<Row> {
    body.get("value")
        .and_then(Value::as_array)
        .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default()
}

pub(crate) fn link(body: &Row, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_string)
}

/// Who the connector's identity is: the `WhoAmIResponse` complex type
/// (<https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/whoamiresponse>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoAmI {
    /// The `systemuserid` of the caller (for an application: its
    /// application user).
    pub user_id: String,
    /// The user's business unit.
    pub business_unit_id: String,
    /// The organization (environment).
    pub organization_id: String,
}

/// A privilege a user holds (`RolePrivilege`,
/// <https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/roleprivilege>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPrivilege {
    /// `PrivilegeName`, e.g. `prvReadAccount`.
    pub name: String,
    /// `Depth`: `Basic`, `Local`, `Deep` or `Global`.
    pub depth: String,
}

impl DataverseConnector {
    /// `GET WhoAmI`: the identity the connector's token stands for.
    pub async fn who_am_i(&self) -> Result<WhoAmI, ConnectorError> {
        let call = Call::new(Method::GET, self.transport.url("WhoAmI"));
        let reply = self.transport.send_ok(&call).await?;
        let body = self.transport.json(&call, &reply)?;
        let id = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ConnectorError::Protocol {
                    system: SystemKind::Dataverse,
                    url: call.url.clone(),
                    detail: format!("the WhoAmI answer has no {name}"),
                })
        };
        Ok(WhoAmI {
            user_id: id("UserId")?,
            business_unit_id: id("BusinessUnitId")?,
            organization_id: id("OrganizationId")?,
        })
    }

    /// Which of the privileges `names` the user `user_id` holds, through
    /// its roles and its teams', at their effective depth:
    /// `systemusers(id)/Microsoft.Dynamics.CRM.RetrieveUserSetOfPrivilegesByNames`
    /// (<https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/retrieveusersetofprivilegesbynames>;
    /// `RetrieveUserPrivileges` reports team privileges at `Basic` depth only).
    pub async fn user_privileges(
        &self,
        user_id: &str,
        names: &[String],
    ) -> Result<Vec<HeldPrivilege>, ConnectorError> {
        let id = uuid::Uuid::parse_str(user_id).map_err(|_| ConnectorError::Invalid {
            system: SystemKind::Dataverse,
            detail: format!("`{user_id}` is not a systemuser id: pass the UserId WhoAmI gave"),
        })?;
        // A list of strings always serializes.
        let list = serde_json::to_string(names).unwrap_or_default();
        let url = self.transport.url(&format!(
            "systemusers({id})/Microsoft.Dynamics.CRM.RetrieveUserSetOfPrivilegesByNames(PrivilegeNames=@p1)?@p1={}",
            encode(&list)
        ));
        let call = Call::new(Method::GET, url);
        let reply = self.transport.send_ok(&call).await?;
        let body = self.transport.json(&call, &reply)?;
        let held = body
            .get("RolePrivileges")
            .and_then(Value::as_array)
            .ok_or_else(|| ConnectorError::Protocol {
                system: SystemKind::Dataverse,
                url: call.url.clone(),
                detail: "the answer has no RolePrivileges array".into(),
            })?;
        Ok(held
            .iter()
            .filter_map(|privilege| {
                Some(HeldPrivilege {
                    name: privilege.get("PrivilegeName")?.as_str()?.to_string(),
                    depth: depth_name(privilege.get("Depth")),
                })
            })
            .collect())
    }
}

/// A `PrivilegeDepth` as its member name: JSON carries the name, but the
/// enum's values (0 `Basic` to 3 `Global`) are read too.
fn depth_name(depth: Option<&Value>) -> String {
    match depth {
        Some(Value::String(name)) => name.clone(),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(0) => "Basic",
            Some(1) => "Local",
            Some(2) => "Deep",
            Some(3) => "Global",
            _ => "",
        }
        .to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_depths_are_read_by_name_or_value() {
        let depth = |value: Value| depth_name(Some(&value));
        assert_eq!(depth(Value::from("Local")), "Local");
        assert_eq!(depth(Value::from(3)), "Global");
        assert_eq!(depth(Value::from(9)), "");
        assert_eq!(depth_name(None), "");
    }
}
