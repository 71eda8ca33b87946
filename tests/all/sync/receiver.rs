//! The webhook receiver's defences: the secret in a header only, checked
//! before the body is read; bodies capped; HTTPS with the receiver's own
//! certificate; at most so many requests at once, each for so long.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_limits_how_many_requests_it_handles_and_for_how_long() {
    let sync = Sync::start(
        MAPS,
        "listen = \"127.0.0.1:0\"\ncatch_all_interval = \"1h\"",
    )
    .await;
    let addr = sync.engine().webhook_addr().expect("receiver address");
    let started = std::time::Instant::now();
    // As many senders as the receiver handles at once, each with the right
    // secret, each sending a little of a body it says is larger: each
    // holds its place while the receiver waits for the rest.
    let head = format!(
        "POST /events/finops HTTP/1.1\r\nhost: {addr}\r\nx-dualwrite-secret: {SECRET}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{"
    );
    let mut slow = Vec::new();
    for _ in 0..dualwrite::sync::receiver::MAX_CONCURRENT {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        stream.write_all(head.as_bytes()).await.expect("head sent");
        slow.push(stream);
    }
    // One more is turned away, and told when to come back.
    let url = sync.engine().webhook_url("finops").expect("receiver");
    let client = reqwest::Client::new();
    let mut turned_away = None;
    while started.elapsed() < Duration::from_secs(20) {
        let response = client
            .post(&url)
            .header("x-dualwrite-secret", SECRET)
            .body("{}")
            .send()
            .await
            .expect("sent");
        if response.status() == 503 {
            turned_away = Some(response);
            break;
        }
        // The slow senders' requests are not all being handled yet.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let turned_away = turned_away.expect("a request beyond the limit is answered 503");
    assert_eq!(
        turned_away.headers()["retry-after"],
        "1",
        "the sender is told when to send again"
    );
    let text = turned_away.text().await.unwrap_or_default();
    assert!(text.contains("send again"), "{text}");

    // A request that takes too long is ended with 408.
    let mut answer = vec![0; 512];
    let read = tokio::time::timeout(
        dualwrite::sync::receiver::REQUEST_TIMEOUT + Duration::from_secs(15),
        slow[0].read(&mut answer),
    )
    .await
    .expect("answered when its time is up")
    .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() >= dualwrite::sync::receiver::REQUEST_TIMEOUT,
        "not before its time"
    );
    drop(slow);
    sync.shutdown().await;
}
