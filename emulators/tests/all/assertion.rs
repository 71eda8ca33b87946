//! The token endpoint's certificate credential: a client assertion signed
//! with a registered certificate's key gets a token; every documented
//! reason to refuse one gets `invalid_client` with its AADSTS code and the
//! documented error body.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dualwrite_emulators::{
    self as emulator, ClientCredentials, EmulatorConfig, EmulatorError, ServiceKind,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use sha2::Sha256;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Pair {
    pem: String,
    key: EncodingKey,
    x5t: String,
    x5t_s256: String,
}

fn pair() -> Pair {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("a key");
    let certificate = rcgen::CertificateParams::new(Vec::new())
        .expect("params")
        .self_signed(&key)
        .expect("a certificate");
    let der: &[u8] = certificate.der();
    Pair {
        pem: certificate.pem(),
        key: EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).expect("an RSA key"),
        x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(der)),
        x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(der)),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The documented claims for `audience`, then `change` applied.
fn claims(audience: &str, change: impl FnOnce(&mut Value)) -> Value {
    let now = now();
    let mut claims = json!({
        "aud": audience,
        "iss": "dualwrite",
        "sub": "dualwrite",
        "jti": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
        "nbf": now,
        "iat": now,
        "exp": now + 300,
    });
    change(&mut claims);
    claims
}

fn sign(
    alg: Algorithm,
    x5t: Option<&str>,
    x5t_s256: Option<&str>,
    claims: &Value,
    key: &EncodingKey,
) -> String {
    let mut header = Header::new(alg);
    header.x5t = x5t.map(str::to_owned);
    header.x5t_s256 = x5t_s256.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("signed")
}

async fn post(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn with_assertion(url: &str, assertion: &str) -> (u16, Value) {
    post(
        url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "dualwrite"),
            ("scope", "https://contoso.crm.dynamics.com/.default"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

/// Asserts the documented error body with `error` and AADSTS `code`.
fn assert_refused(body: &Value, error: &str, code: u64, case: &str) {
    assert_eq!(body["error"], error, "{case}: {body}");
    assert_eq!(body["error_codes"], json!([code]), "{case}: {body}");
    let description = body["error_description"].as_str().expect("a description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{case}: {description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{case}: no {field} in {body}");
    }
}

#[tokio::test]
async fn an_assertion_signed_with_a_registered_certificate_gets_a_token() {
    let registered = pair();
    let running = emulator::start(
        ServiceKind::Dataverse,
        EmulatorConfig {
            clients: vec![ClientCredentials {
                certificates: vec![registered.pem.clone()],
                ..ClientCredentials::default()
            }],
            ..EmulatorConfig::empty()
        },
    )
    .await
    .expect("starts");
    // Any tenant's endpoint; the audience is the endpoint asked.
    let url = format!(
        "{}/contoso.onmicrosoft.com/oauth2/v2.0/token",
        running.url()
    );
    let claims = claims(&url, |_| {});
    for (alg, x5t, x5t_s256) in [
        (Algorithm::PS256, None, Some(registered.x5t_s256.as_str())),
        (Algorithm::RS256, Some(registered.x5t.as_str()), None),
    ] {
        let assertion = sign(alg, x5t, x5t_s256, &claims, &registered.key);
        let (status, body) = with_assertion(&url, &assertion).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        let token = body["access_token"].as_str().expect("a token");
        let service = reqwest::Client::new()
            .get(format!("{}/accounts", running.service_url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent");
        assert_eq!(service.status(), 200, "the token opens the service");
    }
    // The secret still works beside the certificate.
    let (status, _) = post(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "dualwrite"),
            ("client_secret", "dualwrite-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn assertions_that_fail_a_check_get_invalid_client_with_the_documented_code() {
    let registered = pair();
    let stranger = pair();
    let running = emulator::start(
        ServiceKind::Dataverse,
        EmulatorConfig {
            clients: vec![ClientCredentials {
                certificates: vec![registered.pem.clone()],
                ..ClientCredentials::default()
            }],
            ..EmulatorConfig::empty()
        },
    )
    .await
    .expect("starts");
    let url = running.token_url();
    let good = Some(registered.x5t_s256.as_str());
    let ps = Algorithm::PS256;
    let cases: Vec<(&str, String, u64)> = vec![
        (
            "signed with another key under the registered thumbprint",
            sign(ps, None, good, &claims(&url, |_| {}), &stranger.key),
            700027,
        ),
        (
            "a certificate not registered",
            sign(
                ps,
                None,
                Some(&stranger.x5t_s256),
                &claims(&url, |_| {}),
                &stranger.key,
            ),
            700027,
        ),
        (
            "no thumbprint",
            sign(ps, None, None, &claims(&url, |_| {}), &registered.key),
            700027,
        ),
        (
            "another audience",
            sign(
                ps,
                None,
                good,
                &claims(
                    "https://login.microsoftonline.com/other/oauth2/v2.0/token",
                    |_| {},
                ),
                &registered.key,
            ),
            700023,
        ),
        (
            "expired",
            sign(
                ps,
                None,
                good,
                &claims(&url, |c| c["exp"] = json!(now() - 600)),
                &registered.key,
            ),
            700024,
        ),
        (
            "not yet valid",
            sign(
                ps,
                None,
                good,
                &claims(&url, |c| c["nbf"] = json!(now() + 600)),
                &registered.key,
            ),
            700024,
        ),
        (
            "another issuer",
            sign(
                ps,
                None,
                good,
                &claims(&url, |c| c["iss"] = json!("someone")),
                &registered.key,
            ),
            700021,
        ),
        (
            "another subject",
            sign(
                ps,
                None,
                good,
                &claims(&url, |c| c["sub"] = json!("someone")),
                &registered.key,
            ),
            700021,
        ),
        (
            "no jti",
            sign(
                ps,
                None,
                good,
                &claims(&url, |c| drop(c.as_object_mut().map(|o| o.remove("jti")))),
                &registered.key,
            ),
            50027,
        ),
        (
            "no exp",
            sign(
                ps,
                None,
                good,
                &claims(&url, |c| drop(c.as_object_mut().map(|o| o.remove("exp")))),
                &registered.key,
            ),
            50027,
        ),
        (
            "an HMAC signature",
            sign(
                Algorithm::HS256,
                None,
                good,
                &claims(&url, |_| {}),
                &EncodingKey::from_secret(b"k").expect("a secret"),
            ),
            50027,
        ),
        ("not a JWT", "not.a.jwt".to_owned(), 50027),
    ];
    for (case, assertion, code) in cases {
        let (status, body) = with_assertion(&url, &assertion).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_refused(&body, "invalid_client", code, case);
    }

    let assertion = sign(ps, None, good, &claims(&url, |_| {}), &registered.key);
    let (status, body) = post(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "dualwrite"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_refused(&body, "invalid_request", 90023, "another assertion type");

    let (status, body) = post(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "dualwrite"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_refused(&body, "invalid_request", 900144, "no credential");
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_registered_certificate_that_is_not_pem_stops_the_emulator_naming_the_client() {
    let error = emulator::start(
        ServiceKind::Finops,
        EmulatorConfig {
            clients: vec![ClientCredentials {
                client_id: "app".into(),
                client_secret: String::new(),
                certificates: vec!["hello".into()],
            }],
            ..EmulatorConfig::empty()
        },
    )
    .await
    .expect_err("refused");
    assert!(matches!(error, EmulatorError::Clients { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("client `app`") && message.contains("PEM"),
        "{message}"
    );
}
