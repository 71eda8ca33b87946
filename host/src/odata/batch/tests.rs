//! Unit tests of the `$batch` codec: round trips, nested change sets, the
//! quirks of other writers, and every kind of malformed input.

use super::*;

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
    Request {
        method: method.into(),
        target: target.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

fn part<M>(content_id: Option<&str>, message: M) -> Part<M> {
    Part {
        content_id: content_id.map(str::to_string),
        message,
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json; type=entry");

#[test]
fn requests_and_responses_round_trip() {
    let requests = Batch {
        boundary: "batch_AAA123".into(),
        items: vec![
            Item::ChangeSet {
                boundary: "changeset_BBB456".into(),
                parts: vec![
                    part(
                        Some("1"),
                        request(
                            "POST",
                            "/api/data/v9.2/accounts",
                            &[JSON],
                            r#"{"name":"a"}"#,
                        ),
                    ),
                    part(
                        Some("2"),
                        request("PATCH", "$1", &[JSON], r#"{"creditlimit":10}"#),
                    ),
                    part(Some("3"), request("DELETE", "tasks(1)", &[], "")),
                ],
            },
            Item::Single(part(
                None,
                request(
                    "GET",
                    "accounts?$select=name",
                    &[("Accept", "application/json")],
                    "",
                ),
            )),
        ],
    };
    let bytes = requests.to_bytes();
    let text = String::from_utf8(bytes.clone()).expect("text");
    assert!(text.starts_with("--batch_AAA123\r\nContent-Type: multipart/mixed; boundary=changeset_BBB456\r\n\r\n--changeset_BBB456\r\n"), "{text}");
    assert!(
        text.contains("Content-ID: 2\r\n\r\nPATCH $1 HTTP/1.1\r\n"),
        "{text}"
    );
    assert!(text.ends_with("--changeset_BBB456--\r\n--batch_AAA123\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET accounts?$select=name HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--batch_AAA123--\r\n"), "{text}");
    assert_eq!(
        BatchRequest::parse(&requests.content_type(), &bytes).expect("parsed"),
        requests
    );
    assert_eq!(requests.message_count(), 4);

    let mut created = Response::new(204, "No Content");
    created.headers.push((
        "OData-EntityId".into(),
        "https://org/api/data/v9.2/accounts(1)".into(),
    ));
    let mut failed = Response::new(400, "Bad Request");
    failed
        .headers
        .push(("Content-Type".into(), "application/json".into()));
    failed.body = br#"{"error":{"code":"0x1","message":"bad"}}"#.to_vec();
    let responses = Batch {
        boundary: "batchresponse_1".into(),
        items: vec![
            Item::ChangeSet {
                boundary: "changesetresponse_2".into(),
                parts: vec![part(Some("1"), created)],
            },
            Item::Single(part(Some("4"), failed)),
            Item::Single(part(None, Response::new(200, ""))),
        ],
    };
    let parsed =
        BatchResponse::parse(&responses.content_type(), &responses.to_bytes()).expect("parsed");
    assert_eq!(parsed, responses);
    let Item::ChangeSet { parts, .. } = &parsed.items[0] else {
        panic!("a change set: {parsed:?}");
    };
    assert_eq!(
        parts[0].message.header("odata-entityid"),
        Some("https://org/api/data/v9.2/accounts(1)")
    );
}

/// A body as the Web API page shows it, with the quirks of hand-written
/// ones: a quoted boundary, a preamble, LF-only lines in one part, a
/// bodiless request ending right after its headers, a blank line after
/// a body, and a line starting with the boundary's text but longer.
#[test]
fn nested_change_sets_and_the_quirks_of_writers_are_read() {
    let body = concat!(
        "a preamble\r\n",
        "--batch_AAA123\r\n",
        "Content-Type: multipart/mixed; boundary=changeset_BBB456\r\n",
        "\r\n",
        "--changeset_BBB456\r\n",
        "Content-Type: application/http\r\n",
        "Content-Transfer-Encoding: binary\r\n",
        "Content-ID: 1\r\n",
        "\r\n",
        "POST https://org/api/data/v9.2/tasks HTTP/1.1\r\n",
        "Content-Type: application/json; type=entry\r\n",
        "\r\n",
        "{\"subject\":\"--batch_AAA1234 is not a delimiter\"}\r\n",
        "\r\n",
        "--changeset_BBB456\n",
        "Content-Type: application/http\n",
        "Content-ID: 2\n",
        "\n",
        "DELETE tasks(1) HTTP/1.1\n",
        "\n",
        "--changeset_BBB456--\r\n",
        "--batch_AAA123\r\n",
        "Content-Type: application/http\r\n",
        "\r\n",
        "GET accounts HTTP/1.1\r\n",
        "Accept: application/json\r\n",
        "--batch_AAA123--\r\n",
        "an epilogue",
    );
    let batch = BatchRequest::parse(
        "multipart/mixed; boundary=\"batch_AAA123\"",
        body.as_bytes(),
    )
    .expect("parsed");
    assert_eq!(batch.boundary, "batch_AAA123");
    assert_eq!(batch.items.len(), 2);
    let Item::ChangeSet { boundary, parts } = &batch.items[0] else {
        panic!("a change set first: {batch:?}");
    };
    assert_eq!(boundary, "changeset_BBB456");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].content_id.as_deref(), Some("1"));
    assert_eq!(parts[0].message.method, "POST");
    assert_eq!(
        parts[0].message.body,
        br#"{"subject":"--batch_AAA1234 is not a delimiter"}"#
    );
    assert_eq!(parts[1].content_id.as_deref(), Some("2"));
    assert_eq!(parts[1].message, request("DELETE", "tasks(1)", &[], ""));
    let Item::Single(get) = &batch.items[1] else {
        panic!("a single request second: {batch:?}");
    };
    assert_eq!(get.content_id, None);
    assert_eq!(
        get.message,
        request("GET", "accounts", &[("Accept", "application/json")], "")
    );
}

#[test]
fn a_missing_boundary_is_named() {
    for (content_type, expected) in [
        (
            "multipart/mixed",
            BatchError::NoBoundary {
                content_type: "multipart/mixed".into(),
            },
        ),
        (
            "application/json",
            BatchError::NotMultipart {
                content_type: "application/json".into(),
            },
        ),
        (
            "",
            BatchError::NotMultipart {
                content_type: String::new(),
            },
        ),
    ] {
        let error = BatchRequest::parse(content_type, b"--b--").expect_err(content_type);
        assert_eq!(error, expected);
        assert!(error.to_string().contains("boundary="), "{error}");
    }
    let error = BatchRequest::parse("multipart/mixed; boundary=b", b"--other\r\n\r\n--other--")
        .expect_err("not this boundary");
    assert_eq!(
        error,
        BatchError::NoDelimiter {
            boundary: "b".into()
        }
    );
    let change_set = "--b\r\nContent-Type: multipart/mixed\r\n\r\n--cs--\r\n--b--\r\n";
    let error = BatchRequest::parse("multipart/mixed; boundary=b", change_set.as_bytes())
        .expect_err("a change set without boundary");
    assert!(
        matches!(&error, BatchError::PartHeaders { part, detail } if part.item == 1 && detail.contains("no boundary")),
        "{error:?}"
    );
}

#[test]
fn a_truncated_part_is_an_error_and_no_prefix_panics() {
    let batch = Batch {
        boundary: "b".into(),
        items: vec![
            Item::ChangeSet {
                boundary: "cs".into(),
                parts: vec![part(
                    Some("1"),
                    request("PATCH", "accounts(1)", &[JSON], "{}"),
                )],
            },
            Item::Single(part(None, request("GET", "accounts", &[], ""))),
        ],
    };
    let bytes = batch.to_bytes();
    let content_type = batch.content_type();
    let cut = bytes.len() - "--b--\r\n".len();
    assert_eq!(
        BatchRequest::parse(&content_type, &bytes[..cut]).expect_err("cut"),
        BatchError::Truncated {
            boundary: "b".into()
        }
    );
    // Every prefix is an error or a shorter batch, never a panic.
    for end in 0..bytes.len() {
        let _ = BatchRequest::parse(&content_type, &bytes[..end]);
        let _ = BatchResponse::parse(&content_type, &bytes[..end]);
    }

    let cut_head =
        "--b\r\nContent-Type: application/http\r\n\r\nPATCH accounts(1) HTT\r\n--b--\r\n";
    let error = BatchRequest::parse("multipart/mixed; boundary=b", cut_head.as_bytes())
        .expect_err("cut in the request line");
    assert!(
        matches!(&error, BatchError::RequestLine { part, line, .. } if part.item == 1 && line == "PATCH accounts(1) HTT"),
        "{error:?}"
    );
    assert!(error.to_string().contains("METHOD URL HTTP/1.1"), "{error}");
    let cut_mime = "--b\r\nContent-Type: application/http\r\n--b--\r\n";
    let error = BatchRequest::parse("multipart/mixed; boundary=b", cut_mime.as_bytes())
        .expect_err("no blank line after the MIME headers");
    assert!(
        matches!(&error, BatchError::PartHeaders { part, .. } if part.item == 1),
        "{error:?}"
    );
    let nested = "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x--\r\n--cs--\r\n--b--\r\n";
    assert_eq!(
        BatchRequest::parse("multipart/mixed; boundary=b", nested.as_bytes()).expect_err("nested"),
        BatchError::NestedChangeSet {
            part: PartPosition {
                item: 1,
                in_change_set: Some(1)
            }
        }
    );
}

#[test]
fn a_bad_status_line_names_the_part_and_the_line() {
    for (status_line, in_change_set) in [
        ("HTTP/1.1 abc Bad", None),
        ("204 No Content", None),
        ("HTTP/1.1 20 Short", Some(1)),
    ] {
        let part =
            format!("Content-Type: application/http\r\nContent-ID: 1\r\n\r\n{status_line}\r\n\r\n");
        let body = match in_change_set {
            None => format!("--b\r\n{part}--b--\r\n"),
            Some(_) => format!(
                "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\n{part}--cs--\r\n--b--\r\n"
            ),
        };
        let error = BatchResponse::parse("multipart/mixed; boundary=b", body.as_bytes())
            .expect_err(status_line);
        let at = PartPosition {
            item: 1,
            in_change_set,
        };
        assert!(
            matches!(&error, BatchError::StatusLine { part, line, .. } if *part == at && line == status_line),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(status_line) && message.contains("HTTP/1.1 CODE Reason"),
            "{message}"
        );
    }
    let header = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\nno colon here\r\n\r\n--b--\r\n";
    let error = BatchResponse::parse("multipart/mixed; boundary=b", header.as_bytes())
        .expect_err("a broken header");
    assert!(matches!(error, BatchError::Header { .. }), "{error:?}");
}
