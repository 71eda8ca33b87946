//! The totals an initial copy's progress measures against: how many rows
//! each side holds, and each company of a striped map, as the services
//! count them ([`RowCount`]: finops exactly, Dataverse up to 5,000 and a
//! lower bound beyond). A count the service refuses or fails leaves the
//! total unknown (no ETA); it never stops the copy.

use crate::checkpoint::Total;
use crate::connector::{ConnectorError, Key, RowCount};
use crate::map::SystemKind;

use super::super::Shared;
use super::super::error::FlowError;
use super::super::runtime::MapRuntime;
use super::super::shape::{self, Side};
use super::super::system::Connector;

/// Counts every row of `side` the copy reads as it begins: on a map
/// striped by company, the sum of its companies' rows (the rows of other
/// companies are never read).
pub(super) async fn count_side(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
) -> Result<(), FlowError> {
    let table = &map.plan.side(side).table;
    let total = if map.plan.companies.is_empty() || map.plan.company_pair().is_none() {
        count(shared, map, side, None).await
    } else {
        let mut sum = Total {
            count: 0,
            exact: true,
        };
        let mut failed = None;
        for company in &map.plan.companies {
            match count(shared, map, side, Some(company)).await {
                Ok(one) => {
                    sum.count += one.count;
                    sum.exact &= one.exact;
                }
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        failed.map_or(Ok(sum), Err)
    };
    match total {
        Ok(total) => shared
            .store
            .set_total(map.name(), side.name(), None, total)?,
        Err(error) => {
            tracing::warn!(map = %map.name(), side = side.name(), %table, %error, "The rows of the side could not be counted: its copy shows no total and no ETA.");
        }
    }
    Ok(())
}

/// Counts the rows of each of `companies` not counted yet, on every side
/// the map reads (a company a page of one side shows may have rows on the
/// other side too).
pub(in crate::sync) async fn count_companies(
    shared: &Shared,
    map: &MapRuntime,
    companies: &[String],
) -> Result<(), FlowError> {
    if map.plan.company_pair().is_none() {
        return Ok(());
    }
    let counted: Vec<(String, String)> = shared
        .store
        .totals(map.name())?
        .into_iter()
        .filter_map(|(side, company, _)| Some((side, company?)))
        .collect();
    for side in Side::BOTH.into_iter().filter(|side| map.side(*side).flows) {
        count_side_companies(shared, map, side, companies, &counted).await?;
    }
    Ok(())
}

async fn count_side_companies(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    companies: &[String],
    counted: &[(String, String)],
) -> Result<(), FlowError> {
    for company in companies {
        if company.is_empty()
            || counted
                .iter()
                .any(|(s, c)| s == side.name() && c == company)
        {
            continue;
        }
        match count(shared, map, side, Some(company)).await {
            Ok(total) => {
                shared
                    .store
                    .set_total(map.name(), side.name(), Some(company), total)?;
            }
            Err(error) => {
                tracing::debug!(map = %map.name(), side = side.name(), %company, %error, "A company's rows could not be counted: it shows no total.");
                // Counted as unknown, so it is not asked again.
                let unknown = Total {
                    count: 0,
                    exact: false,
                };
                shared
                    .store
                    .set_total(map.name(), side.name(), Some(company), unknown)?;
            }
        }
    }
    Ok(())
}

/// The rows of `side` (of `company`, on a map striped by company).
async fn count(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    company: Option<&str>,
) -> Result<Total, ConnectorError> {
    let plan = &map.plan;
    let table = &plan.side(side).table;
    let system = shared.system(plan, side);
    let filter = match company {
        None => None,
        Some(company) => match company_filter(shared, map, side, company).await? {
            Some(filter) => Some(filter),
            None => {
                return Ok(Total {
                    count: 0,
                    exact: false,
                });
            }
        },
    };
    let counted: RowCount = match &system.connector {
        Connector::Dataverse(c) => c.count(table, filter.as_deref()).await?,
        Connector::Finops(c) => c.count(table, filter.as_deref()).await?,
    };
    Ok(Total {
        count: counted.count,
        exact: counted.exact,
    })
}

/// The `$filter` of one company's rows on `side`: `dataAreaId eq 'usmf'`
/// on finops; on Dataverse the company lookup's column by the company
/// row's id (`_msdyn_company_value eq <id>`), `None` while that row is
/// not there.
async fn company_filter(
    shared: &Shared,
    map: &MapRuntime,
    side: Side,
    company: &str,
) -> Result<Option<String>, ConnectorError> {
    let plan = &map.plan;
    let Some(pair) = plan.company_pair() else {
        return Ok(None);
    };
    let Some(field) = shape::field_on(pair, side) else {
        return Ok(None);
    };
    if plan.side(side).kind == SystemKind::Finops || pair.lookup.is_none() {
        return Ok(Some(shape::company_eq(field, company)));
    }
    let Some(lookup) = &pair.lookup else {
        return Ok(None);
    };
    let whole = shared.plan();
    let Some(table) = lookup
        .map
        .as_deref()
        .and_then(|name| whole.map(name))
        .map(|target| target.right.table.clone())
    else {
        return Ok(None);
    };
    let system = shared.system(plan, side);
    let id = system
        .id_of(&table, &Key::single(&lookup.key_field, company))
        .await?;
    Ok(id.map(|id| format!("_{field}_value eq {id}")))
}
