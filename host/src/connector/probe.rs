//! [`probe`]: whether a service answers at all, and over verified TLS,
//! before any token is asked for.
//!
//! An unauthenticated `GET` of the service root, as the Dataverse client
//! probes for its authority (a 401 with `WWW-Authenticate`,
//! <https://learn.microsoft.com/en-us/dotnet/api/microsoft.powerplatform.dataverse.client.auth.authorityresolver.probeforexpectedauthentication>):
//! any HTTP answer means the service is up and its certificate verified. Nothing is sent but the request line and headers.

use std::time::{Duration, Instant};

use super::auth::transport_detail;
use super::error::{ConnectorError, SystemKind};
use super::tls::{TrustedCa, client, tls_failure};

/// Sends one unauthenticated `GET url` and gives the status of the answer;
/// a certificate that does not verify is [`ConnectorError::Tls`], no
/// answer within `timeout` is [`ConnectorError::Unavailable`]. Cancelled,
/// it stops.
pub async fn probe(
    system: SystemKind,
    url: &str,
    ca: Option<&TrustedCa>,
    timeout: Duration,
) -> Result<u16, ConnectorError> {
    let started = Instant::now();
    match client(ca).get(url).timeout(timeout).send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(error) => Err(match tls_failure(&error) {
            Some(detail) => ConnectorError::Tls {
                system,
                url: url.to_string(),
                detail,
            },
            None => ConnectorError::Unavailable {
                system,
                method: "GET".into(),
                url: url.to_string(),
                attempts: 1,
                elapsed: started.elapsed(),
                status: None,
                last: transport_detail(&error),
                retry_after: None,
            },
        }),
    }
}
