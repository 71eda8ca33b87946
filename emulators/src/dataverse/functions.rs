//! The Web API functions an application asks about itself with: who the
//! caller is, and which privileges its user holds.
//!
//! - `GET WhoAmI` answers the `WhoAmIResponse` complex type: `UserId`,
//!   `BusinessUnitId`, `OrganizationId`
//!   (<https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/whoamiresponse>).
//! - `GET systemusers(<id>)/Microsoft.Dynamics.CRM.RetrieveUserSetOfPrivilegesByNames(PrivilegeNames=@p1)?@p1=["prvReadaccount"]`
//!   answers `RolePrivileges`, the named privileges the user holds, each
//!   with `Depth`, `PrivilegeId`, `BusinessUnitId` and `PrivilegeName`
//!   (<https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/retrieveusersetofprivilegesbynames>,
//!   <https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/roleprivilege>);
//!   `RetrieveUserPrivileges()` answers every privilege the user holds
//!   (<https://learn.microsoft.com/en-us/power-apps/developer/data-platform/webapi/reference/retrieveuserprivileges>).
//!   A privilege name that is not one of a table's is left out.
//!
//! The users are the application users of the configured clients; what
//! each holds comes from its security role (`security`).

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::super::SharedState;
use super::super::http::{ApiError, ApiRequest, ApiResponse};
use super::super::security::{self, Access};
use super::{NOT_FOUND, bad_request};

const WHO_AM_I: &str = "WhoAmI";
const USERS: &str = "systemusers(";
const NAMESPACE: &str = "Microsoft.Dynamics.CRM.";
const BY_NAMES: &str = "RetrieveUserSetOfPrivilegesByNames";
const ALL: &str = "RetrieveUserPrivileges";

/// True when `path` (below the service root) calls one of these functions.
pub(crate) fn handles(path: &str) -> bool {
    path == WHO_AM_I
        || path == "WhoAmI()"
        || (path.starts_with(USERS) && path.contains(&format!("/{NAMESPACE}")))
}

/// Answers a function call.
pub(crate) fn handle(state: &SharedState, request: &ApiRequest) -> ApiResponse {
    answer(state, request).unwrap_or_else(|error| error.to_response())
}

fn answer(state: &SharedState, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    if request.method != Method::GET {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            super::BAD_REQUEST,
            "functions are called with GET",
        ));
    }
    let context = |kind: &str| {
        format!(
            "{}/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.{kind}",
            state.base_url
        )
    };
    let Some((user, call)) = request
        .path
        .strip_prefix(USERS)
        .and_then(|rest| rest.split_once(")/"))
    else {
        let client = request.client.clone().unwrap_or_default();
        return Ok(ApiResponse::json(
            StatusCode::OK,
            json!({
                "@odata.context": context("WhoAmIResponse"),
                "BusinessUnitId": security::business_unit_id(),
                "UserId": security::user_id(&client),
                "OrganizationId": security::organization_id(),
            }),
        ));
    };
    let client = state.security.client_of(user).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            format!("systemuser With Id = {user} Does Not Exist"),
        )
    })?;
    let call = call.strip_prefix(NAMESPACE).unwrap_or(call);
    let (function, parameters) = call
        .split_once('(')
        .and_then(|(name, rest)| Some((name, rest.strip_suffix(')')?)))
        .ok_or_else(|| bad_request(format!("'{call}' is not a function call: write Name(…)")))?;
    let wanted: Option<Vec<String>> = match function {
        BY_NAMES => Some(privilege_names(parameters, &request.query)?),
        ALL if parameters.is_empty() => None,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                super::BAD_REQUEST,
                format!(
                    "Resource not found for the segment '{function}': the emulator serves {BY_NAMES} and {ALL} on systemusers"
                ),
            ));
        }
    };
    let mut held = Vec::new();
    for table in state.metadata.tables() {
        for access in Access::ALL {
            let name = security::privilege_name(table, access);
            if wanted.as_ref().is_some_and(|names| !names.contains(&name)) {
                continue;
            }
            if let Some(depth) = state.security.holds(client, &table.name, access) {
                held.push(json!({
                    "Depth": depth.name(),
                    "PrivilegeId": security::privilege_id(&name),
                    "BusinessUnitId": security::business_unit_id(),
                    "PrivilegeName": name,
                }));
            }
        }
    }
    let kind = if wanted.is_some() {
        "RetrieveUserSetOfPrivilegesByNamesResponse"
    } else {
        "RetrieveUserPrivilegesResponse"
    };
    Ok(ApiResponse::json(
        StatusCode::OK,
        json!({ "@odata.context": context(kind), "RolePrivileges": held }),
    ))
}

/// The `PrivilegeNames` parameter: a JSON array of strings, written in the
/// call or through a parameter alias (`PrivilegeNames=@p1` and `@p1=[…]`).
fn privilege_names(parameters: &str, query: &str) -> Result<Vec<String>, ApiError> {
    let mut value = None;
    let mut rest = parameters;
    while let Some((name, tail)) = rest.split_once('=') {
        let (text, next) = split_value(tail);
        if name.trim() == "PrivilegeNames" {
            value = Some(text.trim().to_string());
        }
        rest = next;
    }
    let text = value.ok_or_else(|| {
        bad_request(format!(
            "{BY_NAMES} needs PrivilegeNames: a list of privilege names"
        ))
    })?;
    let text = match text.strip_prefix('@') {
        Some(alias) => form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name.strip_prefix('@') == Some(alias))
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| {
                bad_request(format!(
                    "the parameter alias @{alias} has no value in the query string"
                ))
            })?,
        None => text,
    };
    serde_json::from_str(&text).map_err(|error| {
        bad_request(format!(
            "PrivilegeNames must be a JSON array of strings, e.g. [\"prvReadaccount\"]: {error}"
        ))
    })
}

/// One parameter value and what follows its comma.
fn split_value(text: &str) -> (&str, &str) {
    let (mut depth, mut quoted) = (0usize, false);
    for (at, c) in text.char_indices() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '[' | '(' if !quoted => depth += 1,
            ']' | ')' if !quoted => depth = depth.saturating_sub(1),
            ',' if depth == 0 && !quoted => return (&text[..at], &text[at + 1..]),
            _ => {}
        }
    }
    (text, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_names_come_inline_or_through_an_alias() {
        let names = |parameters: &str, query: &str| {
            privilege_names(parameters, query).map_err(|error| error.message)
        };
        assert_eq!(
            names("PrivilegeNames=[\"a\",\"b\"],ExcludeTeamBasic=false", ""),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            names("PrivilegeNames=@p1", "@p1=%5B%22prvReadaccount%22%5D"),
            Ok(vec!["prvReadaccount".to_string()])
        );
        assert!(names("PrivilegeNames=@p2", "@p1=[]").is_err_and(|m| m.contains("@p2")));
        assert!(names("", "").is_err_and(|m| m.contains("needs PrivilegeNames")));
        assert!(names("PrivilegeNames=prvRead", "").is_err_and(|m| m.contains("JSON array")));
    }
}
