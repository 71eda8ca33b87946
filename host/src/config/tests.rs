//! `Config::build` in process: what the plan holds for the sync engine.

use std::path::PathBuf;

use super::{BuildOptions, Config};
use crate::map::{Direction, EmulatorCatalogue, Literal, NoCatalogue, Plan, Problem, ProblemCode};

const STANDARD_MAPS: &str = include_str!("../../../config/standard-maps.toml");

fn build(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, Vec<Problem>> {
    let catalogue = EmulatorCatalogue::builtin().expect("the built-in tables load");
    let config = Config::from_toml("maps.toml", text).expect("the config parses");
    config.build(&BuildOptions {
        registry: Default::default(),
        file: "maps.toml".into(),
        base_dir: PathBuf::from("."),
        catalogue: &catalogue,
        env,
    })
}

fn secrets(name: &str) -> Option<String> {
    Some(format!("secret-of-{name}"))
}

#[test]
fn the_standard_maps_build_a_plan_with_resolved_lookups() {
    let plan = build(STANDARD_MAPS, &secrets).expect("the standard maps are valid");
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let customers = plan.map("customers").expect("a customers map");
    assert_eq!(customers.key.len(), 2);
    let group = customers
        .fields
        .iter()
        .find(|field| field.left.as_deref() == Some("CustomerGroupId"))
        .expect("the customer group field");
    assert_eq!(group.direction, Direction::Both);
    let lookup = group.lookup.as_ref().expect("a lookup");
    assert_eq!(lookup.key_field, "msdyn_groupid");
    assert_eq!(lookup.map.as_deref(), Some("customer-groups"));
    let company = customers.key.get(1).and_then(|pair| pair.lookup.as_ref());
    assert_eq!(
        company.and_then(|lookup| lookup.map.as_deref()),
        Some("legal-entities")
    );
    let party_type = customers
        .fields
        .iter()
        .find(|field| field.left.as_deref() == Some("PartyType"))
        .expect("the party type default");
    assert_eq!(party_type.right, None);
    assert_eq!(
        party_type.default,
        Some(Literal::Text("Organization".into()))
    );
    assert!(customers.left.filter.is_some() && customers.right.filter.is_some());
    let company = customers
        .company_pair()
        .expect("customers are striped by company");
    assert_eq!(company.right.as_deref(), Some("msdyn_company"));
    let currencies = plan.map("currencies").expect("a currencies map");
    assert!(currencies.company_pair().is_none());
}

#[test]
fn secrets_come_from_the_environment_and_never_show_in_debug() {
    let plan = build(STANDARD_MAPS, &secrets).expect("valid");
    let auth = plan
        .systems
        .get("finops")
        .and_then(|system| system.auth.as_ref())
        .expect("finops has credentials");
    let secret = auth.client_secret.as_ref().expect("the secret was read");
    assert_eq!(secret.expose(), "secret-of-FINOPS_SECRET");
    let shown = format!("{plan:?}");
    assert!(
        !shown.contains("secret-of-"),
        "the secret leaked into Debug"
    );
    assert!(shown.contains("<redacted>"));

    let plan = build(STANDARD_MAPS, &|_| None).expect("an unset secret is only a warning");
    let codes: Vec<ProblemCode> = plan.warnings.iter().map(|problem| problem.code).collect();
    assert_eq!(codes, [ProblemCode::SecretUnset, ProblemCode::SecretUnset]);
}

#[test]
fn without_a_catalogue_only_the_config_itself_is_checked() {
    let text = STANDARD_MAPS.replace("\"CustomersV3\"", "\"NoSuchTable\"");
    assert!(build(&text, &secrets).is_err());
    let config = Config::from_toml("maps.toml", &text).expect("parses");
    let plan = config
        .build(&BuildOptions {
            registry: Default::default(),
            file: "maps.toml".into(),
            base_dir: PathBuf::from("."),
            catalogue: &NoCatalogue,
            env: &secrets,
        })
        .expect("valid without a catalogue");
    let lookups = plan
        .maps
        .iter()
        .flat_map(|map| map.key.iter().chain(&map.fields))
        .filter(|field| field.lookup.is_some())
        .count();
    let unresolved = plan
        .warnings
        .iter()
        .filter(|problem| problem.code == ProblemCode::UnresolvedLookup)
        .count();
    assert_eq!(
        unresolved,
        lookups - 2,
        "all but the two `via` lookups are unresolved"
    );
}

#[test]
fn a_batch_size_one_batch_cannot_carry_is_an_error_not_clamped() {
    for size in [0, 1001, 5000] {
        let text = format!("{STANDARD_MAPS}\n[engine]\nbatch_size = {size}\n");
        let problems = build(&text, &secrets).expect_err("the batch size is refused");
        let problem = problems
            .iter()
            .find(|problem| problem.code == ProblemCode::BatchSize)
            .unwrap_or_else(|| panic!("no DW022 for {size}: {problems:?}"));
        assert!(problem.is_error());
        assert_eq!(problem.file, "maps.toml");
        assert_eq!(problem.map, None);
        assert_eq!(problem.field.as_deref(), Some("engine.batch_size"));
        assert!(
            problem.message.contains("`[engine] batch_size`")
                && problem.message.contains(&format!(" {size}")),
            "{problem}"
        );
        assert!(
            problem
                .help
                .contains("at most 1000: a $batch carries at most 1,000 requests"),
            "{problem}"
        );
    }
    for size in [1, 1000] {
        let text = format!("{STANDARD_MAPS}\n[engine]\nbatch_size = {size}\n");
        let plan = build(&text, &secrets).expect("a batch size from 1 to 1000 is valid");
        assert_eq!(plan.engine.batch_size, size);
    }
}

#[test]
fn parse_errors_name_line_and_column() {
    let error = Config::from_toml("maps.toml", "[systems.x]\nkind = \"sap\"\n")
        .expect_err("an unknown kind");
    let text = error.to_string();
    assert!(text.starts_with("maps.toml:2:8:"), "{text}");
}

fn systems(finops_url: &str, extra: &str) -> String {
    format!(
        r#"
[systems.finops]
kind = "finops"
url = "{finops_url}"
auth = {{ token_url = "https://login.example.com/t/oauth2/v2.0/token", client_id = "c", client_secret_env = "S" }}
{extra}
"#
    )
}

fn problems_with(text: &str, code: ProblemCode) -> Vec<Problem> {
    match build(text, &secrets) {
        Ok(plan) => plan.warnings,
        Err(problems) => problems,
    }
    .into_iter()
    .filter(|problem| problem.code == code)
    .collect()
}

#[test]
fn plain_http_is_an_error_except_to_loopback() {
    for url in [
        "http://127.0.0.1:8081",
        "http://127.8.9.10/data",
        "http://[::1]:8082",
        "http://localhost:8081",
        "http://LOCALHOST",
        "https://contoso.operations.dynamics.com",
    ] {
        let text = systems(url, "");
        assert!(
            problems_with(&text, ProblemCode::InsecureUrl).is_empty(),
            "{url} is allowed"
        );
        build(&text, &secrets).unwrap_or_else(|problems| panic!("{url}: {problems:#?}"));
    }
    for url in [
        "http://contoso.operations.dynamics.com",
        "http://10.0.0.5:8081",
        "http://[::2]/data",
        "http://localhost.example.com",
    ] {
        let problems = problems_with(&systems(url, ""), ProblemCode::InsecureUrl);
        let [problem] = problems.as_slice() else {
            panic!("{url}: one insecure-url problem, got {problems:#?}");
        };
        assert!(problem.is_error(), "{problem}");
        assert_eq!(problem.field.as_deref(), Some("systems.finops.url"));
        let shown = problem.to_string();
        assert!(
            shown.contains("DW023 insecure-url")
                && shown.contains("system `finops`")
                && shown.contains(url)
                && shown.contains("https://"),
            "{shown}"
        );
    }
    let token_over_http = systems("https://contoso.operations.dynamics.com", "")
        .replace("https://login.example.com", "http://login.example.com");
    let problems = problems_with(&token_over_http, ProblemCode::InsecureUrl);
    assert_eq!(
        problems
            .iter()
            .map(|p| p.field.as_deref())
            .collect::<Vec<_>>(),
        [Some("systems.finops.auth.token_url")]
    );
}

#[test]
fn ca_file_is_read_at_build_and_a_bad_one_is_a_problem_naming_file_and_system() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let not_pem = dir.path().join("not-pem.txt");
    std::fs::write(&not_pem, "hello").expect("write");
    let missing = dir.path().join("missing.pem");
    for (file, why) in [(&not_pem, "holds no"), (&missing, "cannot be read")] {
        let extra = format!("ca_file = {:?}", file.display().to_string());
        let problems = problems_with(
            &systems("https://contoso.operations.dynamics.com", &extra),
            ProblemCode::CaFile,
        );
        let [problem] = problems.as_slice() else {
            panic!("one ca-file problem, got {problems:#?}");
        };
        assert!(problem.is_error());
        assert_eq!(problem.field.as_deref(), Some("systems.finops.ca_file"));
        let shown = problem.to_string();
        assert!(
            shown.contains("DW024 ca-file")
                && shown.contains("system `finops`")
                && shown.contains(&file.display().to_string())
                && shown.contains(why),
            "{shown}"
        );
    }
    let plan = build(
        &systems("https://contoso.operations.dynamics.com", ""),
        &secrets,
    )
    .expect("valid without a CA");
    assert!(plan.systems.get("finops").is_some_and(|s| s.ca.is_none()));
}

#[test]
fn concurrency_out_of_bounds_is_an_error_naming_the_field() {
    let cases = [
        (
            "[engine]\nbatches_in_flight = 0\n",
            "engine.batches_in_flight",
        ),
        (
            "[engine]\nbatches_in_flight = 33\n",
            "engine.batches_in_flight",
        ),
    ];
    for (extra, field) in cases {
        let text = format!("{STANDARD_MAPS}\n{extra}");
        let problems = build(&text, &secrets).expect_err("refused");
        let problem = problems
            .iter()
            .find(|problem| problem.code == ProblemCode::Concurrency)
            .unwrap_or_else(|| panic!("no DW033 for {extra}: {problems:?}"));
        assert_eq!(problem.field.as_deref(), Some(field));
    }
    for max in [0, 53] {
        let text = STANDARD_MAPS.replacen(
            "[systems.dataverse]\n",
            &format!("[systems.dataverse]\nmax_concurrency = {max}\n"),
            1,
        );
        let problems = build(&text, &secrets).expect_err("refused");
        let problem = problems
            .iter()
            .find(|problem| problem.code == ProblemCode::Concurrency)
            .unwrap_or_else(|| panic!("no DW033 for {max}: {problems:?}"));
        assert_eq!(
            problem.field.as_deref(),
            Some("systems.dataverse.max_concurrency")
        );
        assert!(problem.message.contains(&format!("is {max}")), "{problem}");
    }
    let text = STANDARD_MAPS.replacen(
        "[systems.dataverse]\n",
        "[systems.dataverse]\nmax_concurrency = 8\n",
        1,
    );
    let plan = build(&text, &secrets).expect("8 is allowed");
    assert_eq!(plan.systems["dataverse"].max_concurrency, 8);
    assert_eq!(plan.systems["finops"].max_concurrency, 52, "the default");
}

/// A self-signed certificate and its private key, PEM; `expired` makes
/// one whose validity ended in 2000.
fn certificate_pem(
    algorithm: &'static rcgen::SignatureAlgorithm,
    expired: bool,
) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(algorithm).expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dualwrite test client");
    if expired {
        params.not_before = rcgen::date_time_ymd(1999, 1, 1);
        params.not_after = rcgen::date_time_ymd(2000, 1, 1);
    }
    let certificate = params.self_signed(&key).expect("a certificate");
    (certificate.pem(), key.serialize_pem())
}

fn rsa_pem() -> (String, String) {
    certificate_pem(&rcgen::PKCS_RSA_SHA256, false)
}

/// A finops system whose `auth` is `auth` (inline table keys).
fn with_auth(auth: &str) -> String {
    format!(
        "[systems.finops]\nkind = \"finops\"\nurl = \"https://contoso.operations.dynamics.com\"\nauth = {{ client_id = \"c\", {auth} }}\n"
    )
}

fn build_in(dir: &std::path::Path, text: &str) -> Result<Plan, Vec<Problem>> {
    let catalogue = EmulatorCatalogue::builtin().expect("the built-in tables load");
    let config = Config::from_toml("maps.toml", text).expect("the config parses");
    config.build(&BuildOptions {
        registry: Default::default(),
        file: "maps.toml".into(),
        base_dir: dir.to_path_buf(),
        catalogue: &catalogue,
        env: &secrets,
    })
}

fn problems_in(dir: &std::path::Path, text: &str, code: ProblemCode) -> Vec<Problem> {
    match build_in(dir, text) {
        Ok(plan) => plan.warnings,
        Err(problems) => problems,
    }
    .into_iter()
    .filter(|problem| problem.code == code)
    .collect()
}

#[test]
fn the_token_endpoint_is_the_tenants_unless_token_url_overrides_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (auth, token_url) in [
        (
            r#"tenant = "contoso.onmicrosoft.com""#,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        ),
        (
            r#"tenant = "0b4b9c1e-1d2f-4a5b-8c7d-9e0f1a2b3c4d", authority_host = "https://login.microsoftonline.us/""#,
            "https://login.microsoftonline.us/0b4b9c1e-1d2f-4a5b-8c7d-9e0f1a2b3c4d/oauth2/v2.0/token",
        ),
        (
            r#"tenant = "contoso.onmicrosoft.com", token_url = "http://127.0.0.1:9/common/oauth2/v2.0/token""#,
            "http://127.0.0.1:9/common/oauth2/v2.0/token",
        ),
    ] {
        let text = with_auth(&format!("{auth}, client_secret_env = \"S\""));
        let plan = build_in(dir.path(), &text).unwrap_or_else(|p| panic!("{auth}: {p:#?}"));
        let system = plan.systems.get("finops").expect("finops");
        let auth_plan = system.auth.as_ref().expect("auth");
        assert_eq!(auth_plan.token_url, token_url, "{auth}");
        let client = auth_plan
            .client_auth(
                "finops",
                "https://contoso.operations.dynamics.com/.default".into(),
            )
            .expect("credentials");
        assert_eq!(client.token_url(), token_url);
        assert_eq!(
            client.scope(),
            "https://contoso.operations.dynamics.com/.default"
        );
        assert!(matches!(client, crate::connector::ClientAuth::Secret(_)));
    }
    // The authority host is held to the https rule like a token URL.
    let text = with_auth(
        r#"tenant = "contoso.onmicrosoft.com", authority_host = "http://login.example.com", client_secret_env = "S""#,
    );
    let problems = problems_in(dir.path(), &text, ProblemCode::InsecureUrl);
    assert_eq!(
        problems
            .iter()
            .map(|p| p.field.as_deref())
            .collect::<Vec<_>>(),
        [Some("systems.finops.auth.authority_host")]
    );
}

#[test]
fn an_auth_table_without_one_endpoint_and_one_credential_is_dw034() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (certificate, key) = rsa_pem();
    std::fs::write(dir.path().join("client.pem"), format!("{certificate}{key}")).expect("write");
    for (auth, field, says) in [
        (
            r#"client_secret_env = "S""#,
            "systems.finops.auth",
            "neither `tenant` nor `token_url`",
        ),
        (
            r#"tenant = "common", client_secret_env = "S""#,
            "systems.finops.auth.tenant",
            "AADSTS9001023",
        ),
        (
            r#"tenant = "Organizations", client_secret_env = "S""#,
            "systems.finops.auth.tenant",
            "not a directory",
        ),
        (
            r#"tenant = "contoso/../x", client_secret_env = "S""#,
            "systems.finops.auth.tenant",
            "neither a GUID nor a domain",
        ),
        (
            r#"tenant = "t", authority_host = "not a url", client_secret_env = "S""#,
            "systems.finops.auth.authority_host",
            "not a URL",
        ),
        (
            r#"tenant = "t""#,
            "systems.finops.auth",
            "neither `client_secret_env` nor `certificate_file`",
        ),
        (
            r#"tenant = "t", client_secret_env = "S", certificate_file = "client.pem""#,
            "systems.finops.auth",
            "both",
        ),
        (
            r#"tenant = "t", client_secret_env = "S", private_key_file = "client.pem""#,
            "systems.finops.auth.private_key_file",
            "without `certificate_file`",
        ),
    ] {
        let problems = problems_in(dir.path(), &with_auth(auth), ProblemCode::AuthConfig);
        let [problem] = problems.as_slice() else {
            panic!("{auth}: one auth-config problem, got {problems:#?}");
        };
        assert!(problem.is_error());
        assert_eq!(problem.field.as_deref(), Some(field), "{auth}");
        let shown = problem.to_string();
        assert!(
            shown.contains("DW034 auth-config")
                && shown.contains("system `finops`")
                && shown.contains(says),
            "{auth}: {shown}"
        );
    }
}

#[test]
fn a_certificate_and_key_are_read_at_build_into_the_plan() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (certificate, key) = rsa_pem();
    std::fs::write(dir.path().join("both.pem"), format!("{certificate}{key}")).expect("write");
    std::fs::write(dir.path().join("cert.pem"), &certificate).expect("write");
    std::fs::write(dir.path().join("key.pem"), &key).expect("write");
    for files in [
        r#"certificate_file = "both.pem""#,
        r#"certificate_file = "cert.pem", private_key_file = "key.pem""#,
    ] {
        let text = with_auth(&format!(r#"tenant = "contoso.onmicrosoft.com", {files}"#));
        let plan = build_in(dir.path(), &text).unwrap_or_else(|p| panic!("{files}: {p:#?}"));
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        let auth = plan
            .systems
            .get("finops")
            .and_then(|s| s.auth.as_ref())
            .expect("auth");
        let read = auth.certificate.as_ref().expect("the certificate was read");
        assert!(read.subject().contains("dualwrite test client"));
        let client = auth
            .client_auth(
                "finops",
                "https://contoso.operations.dynamics.com/.default".into(),
            )
            .expect("credentials");
        assert!(matches!(
            client,
            crate::connector::ClientAuth::Certificate(_)
        ));
        let shown = format!("{plan:?}");
        let key_body = key.lines().nth(1).expect("a line of the key");
        assert!(
            !shown.contains(key_body),
            "the private key leaked into Debug"
        );
    }
}

#[test]
fn a_certificate_or_key_that_cannot_serve_is_dw035_naming_system_and_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let (certificate, key) = rsa_pem();
    let (_, other_key) = rsa_pem();
    let (expired, expired_key) = certificate_pem(&rcgen::PKCS_RSA_SHA256, true);
    let (ec, ec_key) = certificate_pem(&rcgen::PKCS_ECDSA_P256_SHA256, false);
    let cert = write("cert.pem", &certificate);
    let not_pem = write("not-pem.txt", "hello");
    let other = write("other-key.pem", &other_key);
    let expired_file = write("expired.pem", &format!("{expired}{expired_key}"));
    let ec_file = write("ec.pem", &format!("{ec}{ec_key}"));
    let encrypted = write(
        "encrypted.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let missing = dir.path().join("missing.pem").display().to_string();
    let key_file = write("key.pem", &key);
    for (files, field, file, says) in [
        (
            format!("certificate_file = {missing:?}"),
            "certificate_file",
            &missing,
            "cannot be read",
        ),
        (
            format!("certificate_file = {not_pem:?}"),
            "certificate_file",
            &not_pem,
            "no PEM",
        ),
        (
            format!("certificate_file = {key_file:?}"),
            "certificate_file",
            &key_file,
            "no PEM",
        ),
        (
            format!("certificate_file = {cert:?}"),
            "certificate_file",
            &cert,
            "no PEM private key",
        ),
        (
            format!("certificate_file = {cert:?}, private_key_file = {other:?}"),
            "private_key_file",
            &other,
            "does not belong to the certificate",
        ),
        (
            format!("certificate_file = {cert:?}, private_key_file = {encrypted:?}"),
            "private_key_file",
            &encrypted,
            "encrypted",
        ),
        (
            format!("certificate_file = {cert:?}, private_key_file = {missing:?}"),
            "private_key_file",
            &missing,
            "cannot be read",
        ),
        (
            format!("certificate_file = {expired_file:?}"),
            "certificate_file",
            &expired_file,
            "not now",
        ),
        (
            format!("certificate_file = {ec_file:?}"),
            "certificate_file",
            &ec_file,
            "not RSA",
        ),
    ] {
        let text = with_auth(&format!(r#"tenant = "contoso.onmicrosoft.com", {files}"#));
        let problems = problems_in(dir.path(), &text, ProblemCode::ClientCertificate);
        let [problem] = problems.as_slice() else {
            panic!("{files}: one client-certificate problem, got {problems:#?}");
        };
        assert!(problem.is_error());
        assert_eq!(
            problem.field.as_deref(),
            Some(format!("systems.finops.auth.{field}").as_str()),
            "{files}"
        );
        let shown = problem.to_string();
        assert!(
            shown.contains("DW035 client-certificate")
                && shown.contains("system `finops`")
                && shown.contains(file.as_str())
                && shown.contains(says),
            "{files}: {shown}"
        );
    }
}

#[test]
fn a_polling_share_or_request_limit_out_of_bounds_is_dw037() {
    for (extra, field) in [
        ("[engine]\npolling_share = 0.0\n", "engine.polling_share"),
        ("[engine]\npolling_share = 1.5\n", "engine.polling_share"),
        ("[engine]\npolling_share = nan\n", "engine.polling_share"),
    ] {
        let text = format!("{STANDARD_MAPS}\n{extra}");
        let problems = build(&text, &secrets).expect_err("refused");
        let problem = problems
            .iter()
            .find(|problem| problem.code == ProblemCode::PollingBudget)
            .unwrap_or_else(|| panic!("no DW037 for {extra}: {problems:?}"));
        assert_eq!(problem.field.as_deref(), Some(field));
    }
    let text = STANDARD_MAPS.replacen(
        "[systems.dataverse]\n",
        "[systems.dataverse]\nrequest_limit = 0\n",
        1,
    );
    let problems = build(&text, &secrets).expect_err("refused");
    assert!(
        problems.iter().any(|p| p.code == ProblemCode::PollingBudget
            && p.field.as_deref() == Some("systems.dataverse.request_limit")),
        "{problems:?}"
    );
    let plan = build(STANDARD_MAPS, &secrets).expect("the defaults are valid");
    assert_eq!(plan.systems["dataverse"].request_limit, 6000);
    assert!((plan.engine.polling_share - 0.1).abs() < f64::EPSILON);
}

#[test]
fn the_receivers_certificate_and_key_are_read_at_build_and_a_bad_one_is_dw036() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (certificate, key) = certificate_pem(&rcgen::PKCS_ECDSA_P256_SHA256, false);
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let certificate_file = write("receiver.pem", &certificate);
    let key_file = write("receiver-key.pem", &key);
    let both_file = write("both.pem", &format!("{certificate}{key}"));
    let missing = dir.path().join("missing.pem").display().to_string();
    let engine = |lines: &str| format!("{STANDARD_MAPS}\n[engine]\n{lines}\n");

    let plan = build(
        &engine(&format!(
            "tls_certificate_file = {certificate_file:?}\ntls_private_key_file = {key_file:?}"
        )),
        &secrets,
    )
    .expect("a certificate and its key");
    let tls = plan.receiver_tls.expect("read at build");
    assert_eq!(tls.key_pem, key.as_bytes());
    let plan = build(
        &engine(&format!("tls_certificate_file = {both_file:?}")),
        &secrets,
    )
    .expect("both in one file");
    assert!(plan.receiver_tls.is_some());
    assert!(
        build(STANDARD_MAPS, &secrets)
            .expect("valid")
            .receiver_tls
            .is_none()
    );

    let cases = [
        (
            format!("tls_certificate_file = {missing:?}"),
            "engine.tls_certificate_file",
            "cannot read",
        ),
        (
            format!("tls_private_key_file = {key_file:?}"),
            "engine.tls_private_key_file",
            "without `tls_certificate_file`",
        ),
        (
            format!("tls_certificate_file = {certificate_file:?}"),
            "engine.tls_certificate_file",
            "no unencrypted PEM private key",
        ),
        (
            format!("tls_certificate_file = {key_file:?}\ntls_private_key_file = {key_file:?}"),
            "engine.tls_certificate_file",
            "no PEM `CERTIFICATE`",
        ),
    ];
    for (lines, field, why) in cases {
        let problems = build(&engine(&lines), &secrets).expect_err("refused");
        let problem = problems
            .iter()
            .find(|problem| problem.code == ProblemCode::ReceiverTls)
            .unwrap_or_else(|| panic!("no DW036 for {lines}: {problems:?}"));
        assert_eq!(problem.field.as_deref(), Some(field), "{problem}");
        assert!(problem.message.contains(why), "{problem}");
    }
}

#[test]
fn a_public_url_is_https_or_loopback_http_without_a_query() {
    let with = |url: &str| {
        format!(
            "[engine]\nlisten = \"127.0.0.1:8090\"\npublic_url = \"{url}\"\n{}",
            systems("https://contoso.operations.dynamics.com", "")
        )
    };
    for url in [
        "https://dualwrite.contoso.com",
        "https://dualwrite.contoso.com/hooks/",
        "http://127.0.0.1:8090",
        "http://localhost:8090",
    ] {
        let plan = build(&with(url), &secrets).unwrap_or_else(|p| panic!("{url}: {p:#?}"));
        assert_eq!(plan.engine.public_url.as_deref(), Some(url));
    }
    for url in [
        "http://dualwrite.contoso.com",
        "dualwrite.contoso.com",
        "ftp://dualwrite.contoso.com",
        "https://dualwrite.contoso.com/?code=x",
    ] {
        let problems = problems_with(&with(url), ProblemCode::PublicUrl);
        let [problem] = problems.as_slice() else {
            panic!("{url}: one public-url problem, got {problems:#?}");
        };
        assert!(problem.is_error(), "{problem}");
        assert_eq!(problem.field.as_deref(), Some("engine.public_url"));
        let shown = problem.to_string();
        assert!(
            shown.contains("DW038 public-url") && shown.contains(url) && shown.contains("https://"),
            "{shown}"
        );
    }
}
