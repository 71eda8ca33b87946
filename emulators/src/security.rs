//! Security roles: what each client's application user may do per table,
//! the privileges the Dataverse emulator reports for it, and the reads
//! and writes both emulators refuse it.
//!
//! A client with no [`SecurityRole`] holds every privilege at `Global`
//! (organization) depth, as an application user with the System
//! Administrator role does; a client with a role holds only what it
//! grants. Dataverse privileges are named `prv{Type}{SchemaName}`; the
//! emulator's `SchemaName` is the table's logical name (`prvReadaccount`),
//! where the service spells the schema name (`prvReadAccount`): clients
//! read the names from `EntityDefinitions` `Privileges`, never build them.
//!
//! Enforced, as the services check privileges before they touch a row
//! (<https://learn.microsoft.com/en-us/power-platform/admin/how-record-access-determined>):
//! `GET` needs `read`, `POST` `create`, `PATCH` `write`, `DELETE`
//! `delete`; a refusal is a 403, on Dataverse with the documented code
//! `0x80040220` "Principal user is missing privilege"
//! (<https://learn.microsoft.com/en-us/troubleshoot/power-platform/power-apps/dataverse/client-errors>).
//! Depth is reported, not enforced (the emulators have no row owners).

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ServiceKind;
use super::http::{ApiError, ApiRequest};
use dualwrite::schema::TableDef;

/// One kind of access to a table (Dataverse `PrivilegeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Make rows.
    Create,
    /// Read rows.
    Read,
    /// Change rows.
    Write,
    /// Delete rows.
    Delete,
    /// Give a row another owner.
    Assign,
    /// Share a row.
    Share,
    /// Point this table's rows at other rows (set a lookup).
    Append,
    /// Let other rows point at this table's rows.
    AppendTo,
}

impl Access {
    /// Every access, in the order the service lists a table's privileges.
    pub const ALL: [Access; 8] = [
        Access::Create,
        Access::Read,
        Access::Write,
        Access::Delete,
        Access::Assign,
        Access::Share,
        Access::Append,
        Access::AppendTo,
    ];

    /// The Dataverse `PrivilegeType` member name.
    pub fn privilege_type(self) -> &'static str {
        match self {
            Access::Create => "Create",
            Access::Read => "Read",
            Access::Write => "Write",
            Access::Delete => "Delete",
            Access::Assign => "Assign",
            Access::Share => "Share",
            Access::Append => "Append",
            Access::AppendTo => "AppendTo",
        }
    }
}

/// How far a privilege reaches (Dataverse `PrivilegeDepth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Depth {
    /// Rows the user owns.
    Basic,
    /// Rows of the user's business unit.
    Local,
    /// Rows of the user's business unit and the units below it.
    Deep,
    /// Every row of the organization.
    #[default]
    Global,
}

impl Depth {
    /// The `PrivilegeDepth` member name.
    pub fn name(self) -> &'static str {
        match self {
            Depth::Basic => "Basic",
            Depth::Local => "Local",
            Depth::Deep => "Deep",
            Depth::Global => "Global",
        }
    }
}

/// What a role grants on one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableAccess {
    /// The entity set (Dataverse) or data entity (finops).
    pub table: String,
    /// The access granted.
    pub access: Vec<Access>,
    /// How far it reaches; `global` by default.
    #[serde(default)]
    pub depth: Depth,
}

/// A security role assigned to one client's application user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityRole {
    /// The client (application id) whose user holds the role.
    pub client_id: String,
    /// What it grants; nothing else is granted.
    pub privileges: Vec<TableAccess>,
}

/// The roles in force, and the users of the known clients.
#[derive(Debug)]
pub(crate) struct Security {
    kind: ServiceKind,
    roles: Vec<SecurityRole>,
    clients: Vec<String>,
}

impl Security {
    pub(crate) fn new(kind: ServiceKind, roles: Vec<SecurityRole>, clients: Vec<String>) -> Self {
        Self {
            kind,
            roles,
            clients,
        }
    }

    /// The depth at which `client` holds `access` on `table`, if it does.
    pub(crate) fn holds(&self, client: &str, table: &str, access: Access) -> Option<Depth> {
        let Some(role) = self.roles.iter().find(|role| role.client_id == client) else {
            return Some(Depth::Global);
        };
        role.privileges
            .iter()
            .filter(|grant| grant.table == table && grant.access.contains(&access))
            .map(|grant| grant.depth)
            .max()
    }

    /// The clients whose application users the emulator knows.
    pub(crate) fn clients(&self) -> &[String] {
        &self.clients
    }

    /// The client whose application user has `user_id`.
    pub(crate) fn client_of(&self, user_id: &str) -> Option<&str> {
        self.clients
            .iter()
            .find(|client| user_id.eq_ignore_ascii_case(&self::user_id(client).to_string()))
            .map(String::as_str)
    }

    /// Refuses `request` on `table` when its client lacks the access its
    /// method needs. Requests without a client (none reach a table) pass.
    pub(crate) fn authorize(&self, table: &TableDef, request: &ApiRequest) -> Result<(), ApiError> {
        let Some(client) = &request.client else {
            return Ok(());
        };
        let access = match request.method {
            Method::GET => Access::Read,
            Method::POST => Access::Create,
            Method::PATCH | Method::PUT => Access::Write,
            Method::DELETE => Access::Delete,
            _ => return Ok(()),
        };
        if self.holds(client, &table.name, access).is_some() {
            return Ok(());
        }
        Err(match self.kind {
            ServiceKind::Dataverse => ApiError::new(
                StatusCode::FORBIDDEN,
                "0x80040220",
                format!(
                    "Principal user (Id={}, type=8) is missing {} privilege on OTC for entity '{}'.",
                    user_id(client),
                    privilege_name(table, access),
                    table.entity_name()
                ),
            ),
            ServiceKind::Finops => ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "The user of client '{client}' has no {} access to the data entity '{}'.",
                    access.privilege_type(),
                    table.name
                ),
            ),
        })
    }
}

/// The `systemuserid` of a client's application user: stable across
/// restarts.
pub(crate) fn user_id(client: &str) -> Uuid {
    name_id("systemuser", client)
}

/// The business unit every user of the emulator belongs to.
pub(crate) fn business_unit_id() -> Uuid {
    name_id("businessunit", "root")
}

/// The organization of the emulator.
pub(crate) fn organization_id() -> Uuid {
    name_id("organization", "emulator")
}

/// `prvReadaccount`: the privilege of `access` on `table`.
pub(crate) fn privilege_name(table: &TableDef, access: Access) -> String {
    format!("prv{}{}", access.privilege_type(), table.entity_name())
}

/// The stable id of a privilege, by name.
pub(crate) fn privilege_id(name: &str) -> Uuid {
    name_id("privilege", name)
}

pub(crate) fn name_id(kind: &str, name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("dualwrite-emulator:{kind}:{name}").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_without_a_role_holds_everything_and_a_role_only_what_it_grants() {
        let security = Security::new(
            ServiceKind::Dataverse,
            vec![SecurityRole {
                client_id: "reader".into(),
                privileges: vec![
                    TableAccess {
                        table: "accounts".into(),
                        access: vec![Access::Read],
                        depth: Depth::Basic,
                    },
                    TableAccess {
                        table: "accounts".into(),
                        access: vec![Access::Read, Access::Write],
                        depth: Depth::Local,
                    },
                ],
            }],
            vec!["admin".into(), "reader".into()],
        );
        assert_eq!(
            security.holds("admin", "accounts", Access::Delete),
            Some(Depth::Global)
        );
        assert_eq!(
            security.holds("reader", "accounts", Access::Read),
            Some(Depth::Local),
            "the widest grant counts"
        );
        assert_eq!(security.holds("reader", "accounts", Access::Create), None);
        assert_eq!(security.holds("reader", "contacts", Access::Read), None);
        let id = user_id("reader").to_string().to_uppercase();
        assert_eq!(security.client_of(&id), Some("reader"));
        assert_eq!(security.client_of("nobody"), None);
    }
}
