//! The Microsoft identity platform as the connectors speak it, over real
//! HTTP on 127.0.0.1: the tenant's token endpoint and the service's scope
//! from the config, the certificate credential against the emulator's
//! token endpoint (and a certificate it does not know refused), a token
//! endpoint that redirects or never answers, a token that expires, and a
//! service that refuses tokens with 401.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Form;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::{any, post};
use axum::{Json, Router};
use dualwrite::config::{BuildOptions, Config};
use dualwrite::connector::{
    ClientAuth, ConnectorError, ConnectorOptions, Credentials, DataverseConnector, Query,
    SystemKind,
};
use dualwrite::map::NoCatalogue;
use dualwrite_emulators::{ClientCredentials, EmulatorConfig, RunningEmulator, ServiceKind};
use serde_json::{Value, json};

use super::support::{credentials, fast_options, serve, start};

/// A token request as a test server saw it: the path and the form.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    form: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A token endpoint in front of `upstream` (an emulator's base URL): it
/// records each request, posts it to the same path upstream and answers
/// what upstream answered, with `expires_in` replaced when `expires_in` is
/// set.
async fn recording_proxy(upstream: String, expires_in: Option<u64>) -> (String, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let router = Router::new().route(
        "/{*path}",
        post(move |uri: Uri, Form(form): Form<Vec<(String, String)>>| {
            let seen = seen.clone();
            let upstream = upstream.clone();
            async move {
                seen.lock().expect("log").push(Seen {
                    path: uri.path().to_owned(),
                    form: form.clone(),
                });
                let response = reqwest::Client::new()
                    .post(format!("{upstream}{}", uri.path()))
                    .form(&form)
                    .send()
                    .await
                    .expect("upstream answers");
                let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
                let mut body: Value = response.json().await.expect("json");
                if let (Some(seconds), true) = (expires_in, status == StatusCode::OK) {
                    body["expires_in"] = json!(seconds);
                }
                (status, Json(body))
            }
        }),
    );
    (serve(router).await, log)
}

/// A self-signed certificate and its RSA private key, PEM.
fn certificate_pair() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dualwrite");
    let certificate = params.self_signed(&key).expect("a certificate");
    (certificate.pem(), key.serialize_pem())
}

/// The credentials of system `dataverse` as the engine takes them from the
/// plan: `config` built (relative files in `dir`, the secret `S` set),
/// asking for `{emulator}/.default`.
fn credentials_from_config(dir: &Path, emulator: &RunningEmulator, auth: &str) -> ClientAuth {
    let text = format!(
        "[systems.dataverse]\nkind = \"dataverse\"\nurl = \"{}\"\nauth = {{ client_id = \"dualwrite\", {auth} }}\n",
        emulator.url()
    );
    let config = Config::from_toml("maps.toml", &text).expect("the config parses");
    let plan = config
        .build(&BuildOptions {
            registry: Default::default(),
            file: "maps.toml".into(),
            base_dir: dir.to_path_buf(),
            catalogue: &NoCatalogue,
            env: &|name| (name == "S").then(|| "dualwrite-secret".to_owned()),
        })
        .unwrap_or_else(|problems| panic!("{auth}: {problems:#?}"));
    plan.systems
        .get("dataverse")
        .and_then(|system| system.auth.as_ref())
        .expect("auth")
        .client_auth("dataverse", format!("{}/.default", emulator.url()))
        .expect("credentials")
}

#[tokio::test]
async fn without_token_url_the_secret_goes_to_the_tenants_endpoint_for_the_service_scope() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let (authority, log) = recording_proxy(emulator.url(), None).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let auth = credentials_from_config(
        dir.path(),
        &emulator,
        &format!(
            r#"tenant = "contoso.onmicrosoft.com", authority_host = "{authority}", client_secret_env = "S""#
        ),
    );
    assert_eq!(
        auth.token_url(),
        format!("{authority}/contoso.onmicrosoft.com/oauth2/v2.0/token")
    );
    let dv = DataverseConnector::new(&emulator.service_url(), auth, fast_options());
    dv.query_all("accounts", &Query::default())
        .await
        .expect("a query with the tenant's token");
    let seen = log.lock().expect("log").clone();
    let [request] = seen.as_slice() else {
        panic!("one token request, got {seen:#?}");
    };
    assert_eq!(request.path, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert_eq!(request.field("grant_type"), Some("client_credentials"));
    assert_eq!(request.field("client_id"), Some("dualwrite"));
    assert_eq!(request.field("client_secret"), Some("dualwrite-secret"));
    let scope = format!("{}/.default", emulator.url());
    assert_eq!(request.field("scope"), Some(scope.as_str()));
    assert_eq!(request.field("client_assertion"), None);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_certificate_registered_for_the_client_gets_a_token_from_the_emulator() {
    let (certificate, key) = certificate_pair();
    let emulator = start(
        ServiceKind::Dataverse,
        EmulatorConfig {
            clients: vec![ClientCredentials {
                certificates: vec![certificate.clone()],
                ..ClientCredentials::default()
            }],
            ..EmulatorConfig::empty()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("client.pem"), format!("{certificate}{key}")).expect("write");
    std::fs::write(dir.path().join("cert.pem"), &certificate).expect("write");
    std::fs::write(dir.path().join("key.pem"), &key).expect("write");
    for auth in [
        format!(
            r#"token_url = "{}", certificate_file = "client.pem""#,
            emulator.token_url()
        ),
        // The emulator serves every tenant's path; the assertion's `aud`
        // is the tenant's endpoint, which the emulator checks.
        format!(
            r#"tenant = "contoso.onmicrosoft.com", authority_host = "{}", certificate_file = "cert.pem", private_key_file = "key.pem""#,
            emulator.url()
        ),
    ] {
        let client = credentials_from_config(dir.path(), &emulator, &auth);
        assert!(matches!(client, ClientAuth::Certificate(_)), "{auth}");
        let dv = DataverseConnector::new(&emulator.service_url(), client, fast_options());
        dv.query_all("accounts", &Query::default())
            .await
            .unwrap_or_else(|error| panic!("{auth}: {error}"));
        assert_eq!(dv.stats().tokens, 1);
        assert!(!format!("{dv:?}").contains(&key[40..80]), "the key leaked");
    }

    // Through a proxy the assertion names the proxy's URL, not the
    // emulator's endpoint: refused for its audience (AADSTS700023).
    let (proxy, log) = recording_proxy(emulator.url(), None).await;
    let client = credentials_from_config(
        dir.path(),
        &emulator,
        &format!(
            r#"tenant = "contoso.onmicrosoft.com", authority_host = "{proxy}", certificate_file = "client.pem""#
        ),
    );
    let dv = DataverseConnector::new(&emulator.service_url(), client, fast_options());
    let error = dv
        .query_all("accounts", &Query::default())
        .await
        .expect_err("another audience");
    assert!(
        matches!(&error, ConnectorError::Auth { status: Some(401), detail, .. } if detail.starts_with("invalid_client: AADSTS700023:")),
        "{error:?}"
    );
    let seen = log.lock().expect("log").clone();
    let [request] = seen.as_slice() else {
        panic!("one token request, got {seen:#?}");
    };
    assert_eq!(request.path, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert_eq!(request.field("grant_type"), Some("client_credentials"));
    assert_eq!(request.field("client_id"), Some("dualwrite"));
    assert_eq!(
        request.field("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert!(
        request
            .field("client_assertion")
            .is_some_and(|jwt| jwt.split('.').count() == 3)
    );
    assert_eq!(request.field("client_secret"), None);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_certificate_the_emulator_does_not_know_is_refused_with_aadsts700027() {
    let (registered, _) = certificate_pair();
    let (other, other_key) = certificate_pair();
    let emulator = start(
        ServiceKind::Dataverse,
        EmulatorConfig {
            clients: vec![ClientCredentials {
                certificates: vec![registered],
                ..ClientCredentials::default()
            }],
            ..EmulatorConfig::empty()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("other.pem"), format!("{other}{other_key}")).expect("write");
    let client = credentials_from_config(
        dir.path(),
        &emulator,
        &format!(
            r#"token_url = "{}", certificate_file = "other.pem""#,
            emulator.token_url()
        ),
    );
    let dv = DataverseConnector::new(&emulator.service_url(), client, fast_options());
    let error = dv
        .query_all("accounts", &Query::default())
        .await
        .expect_err("an unknown certificate is refused");
    let ConnectorError::Auth {
        system,
        token_url,
        status,
        detail,
    } = &error
    else {
        panic!("an auth error, got {error:?}");
    };
    assert_eq!(*system, SystemKind::Dataverse);
    assert_eq!(token_url, &emulator.token_url());
    assert_eq!(*status, Some(401));
    assert!(
        detail.starts_with("invalid_client: AADSTS700027:"),
        "{detail}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("dataverse:") && message.contains("certificate"),
        "{message}"
    );
    assert_eq!(dv.stats().requests, 0, "nothing reached the service");
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_token_endpoint_that_redirects_is_an_error_naming_where_and_nothing_follows() {
    // Where the redirect points: a server that counts what reaches it.
    let reached = Arc::new(Mutex::new(0usize));
    let counter = reached.clone();
    let elsewhere = serve(Router::new().route(
        "/{*path}",
        any(move || {
            let counter = counter.clone();
            async move {
                *counter.lock().expect("count") += 1;
                StatusCode::OK
            }
        }),
    ))
    .await;
    let target = format!("{elsewhere}/stolen/oauth2/v2.0/token");
    for status in [StatusCode::FOUND, StatusCode::TEMPORARY_REDIRECT] {
        let location = target.clone();
        let redirector = serve(Router::new().route(
            "/token",
            post(move || {
                let location = location.clone();
                async move { (status, [(header::LOCATION, location)]).into_response() }
            }),
        ))
        .await;
        let dv = DataverseConnector::new(
            "http://127.0.0.1:9/api/data/v9.2",
            Credentials {
                token_url: format!("{redirector}/token"),
                client_id: "dualwrite".into(),
                client_secret: "dualwrite-secret".into(),
                scope: "http://127.0.0.1:9/.default".into(),
            },
            fast_options(),
        );
        let error = dv
            .query_all("accounts", &Query::default())
            .await
            .expect_err("a redirect is refused");
        assert!(
            matches!(&error, ConnectorError::Auth { status: s, .. } if *s == Some(status.as_u16())),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&target) && message.contains("follows no redirect"),
            "{message}"
        );
    }
    assert_eq!(
        *reached.lock().expect("count"),
        0,
        "the secret went nowhere"
    );
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_before_the_request() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let (proxy, log) = recording_proxy(emulator.url(), Some(1)).await;
    let dv = DataverseConnector::new(
        &emulator.service_url(),
        Credentials {
            token_url: format!("{proxy}/common/oauth2/v2.0/token"),
            ..credentials(&emulator)
        },
        ConnectorOptions {
            token_refresh_margin: Duration::ZERO,
            ..fast_options()
        },
    );
    dv.query_all("accounts", &Query::default())
        .await
        .expect("query");
    dv.query_all("accounts", &Query::default())
        .await
        .expect("query");
    assert_eq!(dv.stats().tokens, 1, "a token is kept while it lives");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    dv.query_all("accounts", &Query::default())
        .await
        .expect("query after the token expired");
    let stats = dv.stats();
    assert_eq!(stats.tokens, 2, "the expired token was replaced");
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.retries, 0, "replaced before use, not after a 401");
    assert_eq!(log.lock().expect("log").len(), 2);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_401_fetches_one_new_token_and_repeats_once_then_is_an_error_naming_the_system() {
    let emulator = start(ServiceKind::Dataverse, EmulatorConfig::empty()).await;
    let refusals = Arc::new(Mutex::new(0usize));
    let counter = refusals.clone();
    let service = serve(Router::new().route(
        "/api/data/v9.2/{*rest}",
        any(move || {
            let counter = counter.clone();
            async move {
                *counter.lock().expect("count") += 1;
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"error": {"code": "0x80072560", "message": "The user is not a member of the organization."}})),
                )
            }
        }),
    ))
    .await;
    let dv = DataverseConnector::new(
        &format!("{service}/api/data/v9.2"),
        credentials(&emulator),
        fast_options(),
    );
    let error = dv
        .query_all("accounts", &Query::default())
        .await
        .expect_err("refused twice");
    let ConnectorError::Unauthorized {
        system,
        url,
        service: refused,
        ..
    } = &error
    else {
        panic!("unauthorized, got {error:?}");
    };
    assert_eq!(*system, SystemKind::Dataverse);
    assert!(url.starts_with(&service), "{url}");
    assert_eq!(refused.code, "0x80072560");
    assert_eq!(error.status(), Some(401));
    assert!(error.refusal().is_none(), "not the row's fault");
    let message = error.to_string();
    assert!(
        message.starts_with("dataverse:") && message.contains("401 twice"),
        "{message}"
    );
    assert_eq!(
        *refusals.lock().expect("count"),
        2,
        "sent once more, not again"
    );
    assert_eq!(dv.stats().tokens, 2, "one new token after the first 401");
    // The refused token is not kept: the next call starts with a new one.
    dv.query_all("accounts", &Query::default())
        .await
        .expect_err("refused again");
    assert_eq!(*refusals.lock().expect("count"), 4);
    assert_eq!(dv.stats().tokens, 4);
    emulator.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_times_out() {
    // Accepts connections, reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let dv = DataverseConnector::new(
        "http://127.0.0.1:9/api/data/v9.2",
        Credentials {
            token_url: format!("http://{addr}/common/oauth2/v2.0/token"),
            client_id: "dualwrite".into(),
            client_secret: "dualwrite-secret".into(),
            scope: "http://127.0.0.1:9/.default".into(),
        },
        ConnectorOptions {
            request_timeout: Duration::from_millis(500),
            ..fast_options()
        },
    );
    let started = Instant::now();
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        dv.query_all("accounts", &Query::default()),
    )
    .await
    .expect("the token request gave up by itself")
    .expect_err("no answer");
    let elapsed = started.elapsed();
    assert!(
        matches!(&error, ConnectorError::Auth { status: None, detail, .. } if detail.starts_with("timed out")),
        "{error:?}"
    );
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}
