//! The checks of one system, in the order they depend on each other: it
//! answers (over TLS that verifies), a token can be had and stands for a
//! user (Dataverse `WhoAmI`), its table definitions can be read. The first
//! that fails is the system's problem; the later ones are not tried.

use std::time::Duration;

use serde::Serialize;

use super::target::{SystemTarget, describe};
use crate::connector::{
    ConnectorError, DataverseConnector, FinopsConnector, MetadataReader, WhoAmI, probe,
};
use crate::map::{Problem, ProblemCode, SystemKind};
use crate::schema::TableDef;

/// How long the first, unauthenticated request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the checks found out about one system.
#[derive(Debug, Clone, Serialize)]
pub struct SystemSummary {
    /// Its name in `[systems.NAME]`.
    pub name: String,
    /// Which service it is.
    pub kind: SystemKind,
    /// The service root the checks used.
    pub url: String,
    /// It answered, over TLS that verified.
    pub answered: bool,
    /// Dataverse: the `systemuserid` the token stands for (`WhoAmI`).
    pub user_id: Option<String>,
    /// How many tables its metadata describes, once read.
    pub tables: Option<usize>,
}

/// A system whose checks all passed: what the map checks need of it.
#[derive(Debug)]
pub(super) struct LiveSystem {
    pub target: SystemTarget,
    pub tables: Vec<TableDef>,
    pub reader: MetadataReader,
    pub access: Access,
}

/// The connector of a live system, for the map checks.
#[derive(Debug)]
pub(super) enum Access {
    Dataverse {
        connector: DataverseConnector,
        me: WhoAmI,
    },
    Finops(FinopsConnector),
}

/// Everything known about one system after its checks.
#[derive(Debug)]
pub(super) struct Checked {
    pub summary: SystemSummary,
    pub problems: Vec<Problem>,
    pub live: Option<LiveSystem>,
}

/// Runs the system's checks. Cancelled, it stops; nothing is written.
pub(super) async fn check(target: SystemTarget) -> Checked {
    let mut summary = SystemSummary {
        name: target.name.clone(),
        kind: target.kind,
        url: target.service_url.clone(),
        answered: false,
        user_id: None,
        tables: None,
    };
    let fail = |summary, problem| Checked {
        summary,
        problems: vec![problem],
        live: None,
    };
    let root = format!("{}/", target.service_url);
    if let Err(error) = probe(
        target.connector_kind(),
        &root,
        target.options.ca.as_ref(),
        PROBE_TIMEOUT,
    )
    .await
    {
        return fail(summary, problem(&target, &error, "answer"));
    }
    summary.answered = true;
    let access = match target.kind {
        SystemKind::Dataverse => {
            let connector = DataverseConnector::new(
                &target.service_url,
                target.credentials.clone(),
                target.options.clone(),
            );
            match connector.who_am_i().await {
                Ok(me) => {
                    summary.user_id = Some(me.user_id.clone());
                    Access::Dataverse { connector, me }
                }
                Err(error) => return fail(summary, problem(&target, &error, "identity")),
            }
        }
        SystemKind::Finops => Access::Finops(FinopsConnector::new(
            &target.service_url,
            target.credentials.clone(),
            target.options.clone(),
        )),
    };
    let reader = target.metadata_reader();
    let tables = match reader.tables().await {
        Ok(tables) => tables,
        Err(error) => return fail(summary, problem(&target, &error, "metadata")),
    };
    summary.tables = Some(tables.len());
    Checked {
        summary,
        problems: Vec::new(),
        live: Some(LiveSystem {
            target,
            tables,
            reader,
            access,
        }),
    }
}

/// The problem a failed system step is: by the connector error's kind.
/// `step` says what was asked: `answer`, `identity` or `metadata`.
pub(super) fn problem(target: &SystemTarget, error: &ConnectorError, step: &str) -> Problem {
    let name = &target.name;
    let detail = describe(error);
    let asked = match step {
        "answer" => "answer",
        "identity" => "say who its token stands for (WhoAmI)",
        _ => "give its table definitions",
    };
    let (code, field, message, help) = match error {
        ConnectorError::Tls { url, .. } => {
            let token = url == target.credentials.token_url();
            (
                ProblemCode::TlsUnverified,
                if token { "auth.token_url" } else { "url" },
                format!(
                    "the certificate of {} does not verify: {detail}",
                    if token {
                        "the token endpoint"
                    } else {
                        "the service"
                    }
                ),
                format!(
                    "if a private CA signed it, name the CA's PEM file as `ca_file` of `[systems.{name}]`; otherwise fix the certificate"
                ),
            )
        }
        ConnectorError::Auth { .. } => (
            ProblemCode::NoToken,
            "auth",
            format!("no token could be had: {detail}"),
            format!(
                "check `token_url`, `client_id` and the secret of `[systems.{name}]`, and that the application is registered in the tenant"
            ),
        ),
        ConnectorError::Rejected {
            status: 401 | 403, ..
        }
        | ConnectorError::Unauthorized { .. } => (
            ProblemCode::MissingPrivilege,
            "auth.client_id",
            format!("the service refused the identity: {detail}"),
            match target.kind {
                SystemKind::Dataverse => format!(
                    "make the application `{}` an application user of the environment with a security role",
                    target.credentials.client_id()
                ),
                SystemKind::Finops => format!(
                    "register the application `{}` in Microsoft Entra ID applications of the environment, with a user that has the needed roles",
                    target.credentials.client_id()
                ),
            },
        ),
        ConnectorError::Unavailable { .. } => (
            ProblemCode::ServiceUnavailable,
            "url",
            format!("the service does not {asked}: {detail}"),
            format!("check `url` of `[systems.{name}]`, the network and that the service is up"),
        ),
        ConnectorError::Rejected { .. }
        | ConnectorError::Protocol { .. }
        | ConnectorError::Invalid { .. } => (
            ProblemCode::ServiceUnavailable,
            "url",
            format!(
                "the service answers, but does not {asked} as a {} service does: {detail}",
                match target.kind {
                    SystemKind::Dataverse => "Dataverse",
                    SystemKind::Finops => "finops",
                }
            ),
            format!(
                "check that `url` of `[systems.{name}]` is the environment's URL (Dataverse `https://org.crm.dynamics.com`, finops `https://env.operations.dynamics.com`)"
            ),
        ),
    };
    Problem::new(code, message, help)
        .on_system(name)
        .at_field(format!("systems.{name}.{field}"))
}
