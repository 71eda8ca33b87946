//! The webhook receiver's defences: the secret in a header only, checked
//! before the body is read; bodies capped; HTTPS with the receiver's own
//! certificate.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{MAPS, Sync, receiver_certificate};

const SECRET: &str = "hook-secret";

async fn status(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_travels_in_a_header_only_and_is_checked_before_the_body() {
    let sync = Sync::start(
        MAPS,
        "listen = \"127.0.0.1:0\"\ncatch_all_interval = \"1h\"",
    )
    .await;
    let url = sync.engine().webhook_url("finops").expect("receiver");
    let client = reqwest::Client::new();

    // The secret as a query parameter is not a credential.
    let (code, text) = status(
        client
            .post(format!("{url}?code={SECRET}"))
            .body("{}")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("x-dualwrite-secret header"), "{text}");

    // A wrong secret is refused before the body is read: the request says
    // 10 MB are coming, sends a little and waits; the answer comes anyway.
    let addr = sync.engine().webhook_addr().expect("receiver address");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let head = format!(
        "POST /events/finops HTTP/1.1\r\nhost: {addr}\r\nx-dualwrite-secret: wrong\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut answer = vec![0; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered before the body was sent")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // Over the cap: refused, whatever it holds.
    let huge = vec![b' '; dualwrite::sync::receiver::MAX_BODY + 1];
    let (code, text) = status(
        client
            .post(&url)
            .header("x-dualwrite-secret", SECRET)
            .body(huge)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(code, 413, "{text}");

    // The right secret in the header gets as far as reading the event.
    let (code, text) = status(
        client
            .post(&url)
            .header("x-dualwrite-secret", SECRET)
            .body("{")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(code, 400, "{text}");
    sync.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_serves_https_with_its_certificate() {
    let files = tempfile::tempdir().expect("temporary directory");
    let (tls_lines, tls) = receiver_certificate(files.path());
    let engine = format!("listen = \"127.0.0.1:0\"\ncatch_all_interval = \"1h\"\n{tls_lines}");
    let sync = Sync::start(MAPS, &engine).await;
    let url = sync.engine().webhook_url("finops").expect("receiver");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let ca = reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).expect("CA");
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    let (code, text) = status(
        client
            .post(&url)
            .header("x-dualwrite-secret", SECRET)
            .body("{")
            .send()
            .await
            .expect("sent over HTTPS"),
    )
    .await;
    assert_eq!(code, 400, "{text}");
    let (code, _) = status(client.post(&url).body("{").send().await.expect("sent")).await;
    assert_eq!(code, 401);

    // Plain HTTP gets no answer from an HTTPS receiver.
    let plain = reqwest::Client::new()
        .post(url.replacen("https://", "http://", 1))
        .header("x-dualwrite-secret", SECRET)
        .body("{")
        .send()
        .await;
    assert!(plain.is_err() || !plain.is_ok_and(|r| r.status().is_success()));
    sync.shutdown().await;
}
