//! `dualwrite emulate --client-certificate` as a real process: the demo
//! client then gets tokens with that certificate's client assertions, as
//! a connector with a certificate credential sends them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dualwrite::connector::{
    CertificateCredentials, ClientCertificate, ConnectorOptions, DataverseConnector, Query,
};

#[tokio::test]
async fn emulate_with_a_client_certificate_accepts_its_assertions() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("a key");
    let certificate = rcgen::CertificateParams::new(Vec::new())
        .expect("params")
        .self_signed(&key)
        .expect("a certificate");
    let dir = tempfile::tempdir().expect("temporary directory");
    let cert_file = dir.path().join("client.pem");
    let key_file = dir.path().join("client.key");
    std::fs::write(&cert_file, certificate.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");

    let mut emulator = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args([
            "emulate",
            "dataverse",
            "--seed",
            "none",
            "--client-certificate",
        ])
        .arg(&cert_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dualwrite emulate starts");
    let stdout = emulator.stdout.take().expect("stdout");
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let started = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    while !seen
        .iter()
        .any(|line| line.starts_with("client certificate of dualwrite: "))
    {
        if let Ok(line) = printed.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = emulator.kill();
            panic!("no client certificate line within 30 s: {seen:?}");
        }
    }
    let service = seen.first().cloned().unwrap_or_default();
    let token_url = seen
        .iter()
        .find_map(|line| line.strip_prefix("token endpoint: "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_owned();
    let root = service.trim_end_matches("/api/data/v9.2").to_owned();
    let client = DataverseConnector::new(
        &service,
        CertificateCredentials {
            token_url,
            client_id: "dualwrite".into(),
            certificate: ClientCertificate::read(&cert_file, Some(&key_file))
                .expect("the certificate and key"),
            scope: format!("{root}/.default"),
        },
        ConnectorOptions::default(),
    );
    let read = client.query_all("accounts", &Query::default()).await;
    let tokens = client.stats().tokens;
    emulator.kill().expect("the emulator is killed");
    emulator.wait().expect("the emulator exits");

    assert!(
        seen.iter()
            .any(|line| line.contains(&cert_file.display().to_string())),
        "{seen:?}"
    );
    read.expect("a token from the certificate's assertion opens the service");
    assert_eq!(tokens, 1);
}
