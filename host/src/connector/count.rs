//! How many rows a table holds, as each service counts them: the total an
//! initial copy's progress measures against.
//!
//! - Dataverse: `$count=true` gives `@odata.count`, at most 5,000 for a
//!   standard table; asked with the `odata.include-annotations` preference
//!   for `Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded`, the service
//!   says whether there are more. A capped count is a lower bound, never a
//!   total: <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/count-rows>.
//!   (`RetrieveTotalRecordCount` counts beyond, but from a snapshot of the
//!   past 24 hours and without a filter, so it is not used.)
//! - finops: `GET /data/{entity}/$count` answers the number as plain text,
//!   with `cross-company=true` and `$filter` like any query:
//!   <https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata>.

use reqwest::Method;
use serde_json::Value;

use super::dataverse::DataverseConnector;
use super::error::ConnectorError;
use super::finops::FinopsConnector;
use super::transport::Call;

/// A row count a service gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCount {
    /// The count.
    pub count: u64,
    /// False when the service capped it and the rows are more: `count` is
    /// then a lower bound.
    pub exact: bool,
}

/// The most rows Dataverse's `$count=true` counts in a standard table.
pub const DATAVERSE_COUNT_LIMIT: u64 = 5_000;

const COUNT_ANNOTATIONS: &str = "odata.include-annotations=\"Microsoft.Dynamics.CRM.totalrecordcount,Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded\"";

impl DataverseConnector {
    /// The rows of `table` matching `filter` (an OData `$filter`), as
    /// `$count=true` counts them: exact below the service's limit, a lower
    /// bound at it.
    pub async fn count(
        &self,
        table: &str,
        filter: Option<&str>,
    ) -> Result<RowCount, ConnectorError> {
        let mut path = format!("{table}?$count=true");
        if let Some(filter) = filter {
            let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
            path.push_str(&format!("&$filter={encoded}"));
        }
        let call = Call::new(Method::GET, self.transport.url(&path))
            .header("Prefer", format!("odata.maxpagesize=1,{COUNT_ANNOTATIONS}"));
        let reply = self.transport.send_to(&call, table, None).await?;
        let body = self.transport.json(&call, &reply)?;
        let count = body
            .get("@odata.count")
            .and_then(Value::as_u64)
            .ok_or_else(|| ConnectorError::Protocol {
                system: super::SystemKind::Dataverse,
                url: call.url.clone(),
                detail: "a $count=true answer carries no @odata.count".into(),
            })?;
        let exceeded = body
            .get("@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded")
            .and_then(Value::as_bool)
            // Without the annotation, a count at the limit may be capped.
            .unwrap_or(count >= DATAVERSE_COUNT_LIMIT);
        Ok(RowCount {
            count,
            exact: !exceeded,
        })
    }
}

impl FinopsConnector {
    /// The rows of `entity` matching `filter` across companies
    /// (`/$count`): exact.
    pub async fn count(
        &self,
        entity: &str,
        filter: Option<&str>,
    ) -> Result<RowCount, ConnectorError> {
        let mut path = format!("{entity}/$count?cross-company=true");
        if let Some(filter) = filter {
            let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
            path.push_str(&format!("&$filter={encoded}"));
        }
        let call = Call::new(Method::GET, self.transport.url(&path));
        let reply = self.transport.send_to(&call, entity, None).await?;
        let text = String::from_utf8_lossy(&reply.body);
        let count = text
            .trim()
            .trim_start_matches('\u{feff}')
            .parse::<u64>()
            .map_err(|_| ConnectorError::Protocol {
                system: super::SystemKind::Finops,
                url: call.url.clone(),
                detail: format!("a /$count answer is not a number: `{}`", text.trim()),
            })?;
        Ok(RowCount { count, exact: true })
    }
}
