//! `dualwrite emulate --tls` as a real process: it serves HTTPS and prints
//! the CA file a config names as `ca_file`, which is enough to trust it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn emulate_tls_prints_a_ca_file_that_verifies_its_https() {
    let mut emulator = Command::new(env!("CARGO_BIN_EXE_dualwrite"))
        .args(["emulate", "finops", "--tls", "--seed", "none"])
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
    let mut seen = Vec::new();
    let ca_file = loop {
        if let Ok(line) = printed.recv_timeout(Duration::from_millis(200)) {
            match line.strip_prefix("CA certificate: ") {
                Some(path) => break path.to_owned(),
                None => seen.push(line),
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = emulator.kill();
            panic!("no CA path printed within 30 s: {seen:?}");
        }
    };
    let service = seen.first().cloned().unwrap_or_default();
    let token_url = seen
        .iter()
        .find_map(|line| line.strip_prefix("token endpoint: "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_owned();

    let pem = std::fs::read(&ca_file).expect("the printed CA file exists");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .build()
        .expect("client");
    let answer = client
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "dualwrite"),
            ("client_secret", "dualwrite-secret"),
            ("scope", "https://127.0.0.1/.default"),
        ])
        .send()
        .await;
    emulator.kill().expect("the emulator is killed");
    emulator.wait().expect("the emulator exits");

    assert!(service.starts_with("https://127.0.0.1:"), "{seen:?}");
    assert!(token_url.starts_with("https://127.0.0.1:"), "{seen:?}");
    let answer = answer.expect("the CA file verifies the emulator's certificate");
    assert_eq!(answer.status(), 200);
}
