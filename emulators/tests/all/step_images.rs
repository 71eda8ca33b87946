//! Step images of the Dataverse emulator
//! (`sdkmessageprocessingstepimages`): registered, listed, deleted, gone
//! with their step, refused where the service has no such image, and
//! carried by the contexts of their steps.

use std::time::{Duration, Instant};

use dualwrite_emulators::{Access, EmulatorConfig, SecurityRole, ServiceKind, TableAccess};
use reqwest::Method;
use serde_json::{Value, json};

use super::step_endpoint::{Endpoint, attribute, image_body, register};
use super::steps::{create, endpoint};
use super::support::{Harness, empty_config, error_message, send_json};

#[tokio::test]
async fn step_images_are_registered_listed_deleted_and_go_with_their_step() {
    let harness = Harness::dataverse().await;
    let hook = Endpoint::accepting().await;
    let endpoint = endpoint(&harness, &hook.url).await;
    let update = register(&harness, &endpoint, "Update", 40, 1, 1).await;
    let on_create = register(&harness, &endpoint, "Create", 40, 1, 1).await;
    let on_delete = register(&harness, &endpoint, "Delete", 40, 1, 1).await;
    let images = "sdkmessageprocessingstepimages";
    let pre = create(
        &harness,
        images,
        image_body(&update, "pre", 0, "name, telephone1"),
    )
    .await;
    let post = create(&harness, images, image_body(&update, "post", 1, "")).await;
    create(&harness, images, image_body(&on_create, "created", 1, "")).await;
    create(&harness, images, image_body(&on_delete, "deleted", 0, "")).await;

    let listing = format!(
        "{images}?$select=name,entityalias,imagetype,attributes&$filter=_sdkmessageprocessingstepid_value eq {update}"
    );
    let (status, listed) = harness.get_json(&listing).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["value"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let (status, one) = harness.get_json(&format!("{images}({pre})")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["entityalias"], "pre");
    assert_eq!(one["imagetype"], 0);
    assert_eq!(one["attributes"], "name, telephone1");
    assert_eq!(one["messagepropertyname"], "Target");
    assert_eq!(one["_sdkmessageprocessingstepid_value"], update.as_str());

    let refused = |body: Value| {
        let request = harness.request(Method::POST, images).json(&body);
        async move { send_json(request).await }
    };
    for (body, status, expected) in [
        (image_body(&on_create, "x", 0, ""), 400, "no PreImage"),
        (image_body(&on_create, "x", 2, ""), 400, "no PreImage"),
        (image_body(&on_delete, "x", 1, ""), 400, "no PostImage"),
        (image_body(&update, "x", 0, "name,colour"), 400, "'colour'"),
        (image_body(&update, "x", 5, ""), 400, "imagetype 5"),
        (
            image_body(&update, "pre", 2, ""),
            400,
            "already has an image",
        ),
        (
            json!({"entityalias": "x", "imagetype": 0, "messagepropertyname": "Target", "name": "x"}),
            400,
            "sdkmessageprocessingstepid@odata.bind",
        ),
        (
            {
                let mut body = image_body(&update, "x", 0, "");
                body["messagepropertyname"] = json!("Id");
                body
            },
            400,
            "use Target",
        ),
        (
            image_body("00000000-0000-0000-0000-000000000001", "x", 0, ""),
            404,
            "Does Not Exist",
        ),
    ] {
        let (got, answer) = refused(body).await;
        assert_eq!(got, status, "{answer}");
        let code = if status == 404 {
            "0x80040217"
        } else {
            "0x80060888"
        };
        let message = error_message(&answer, code);
        assert!(message.contains(expected), "{expected}: {message}");
    }

    let deleted = harness
        .request(Method::DELETE, &format!("{images}({pre})"))
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), 204);
    let (_, listed) = harness.get_json(&listing).await;
    assert_eq!(listed["value"][0]["entityalias"], "post", "{listed}");
    let (status, _) = harness.get_json(&format!("{images}({pre})")).await;
    assert_eq!(status, 404);

    let step_gone = harness
        .request(
            Method::DELETE,
            &format!("sdkmessageprocessingsteps({update})"),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(step_gone.status(), 204);
    let (_, listed) = harness.get_json(&listing).await;
    assert_eq!(listed["value"], json!([]), "the step's images went with it");
    let (status, _) = harness.get_json(&format!("{images}({post})")).await;
    assert_eq!(status, 404);
    let (_, all) = harness.get_json(images).await;
    assert_eq!(
        all["value"].as_array().map(Vec::len),
        Some(2),
        "the others stay"
    );
    harness.emulator.shutdown().await.expect("stops");

    // Registering an image needs its privilege.
    let config = EmulatorConfig {
        roles: vec![SecurityRole {
            client_id: "dualwrite".into(),
            privileges: vec![TableAccess {
                table: "sdkmessageprocessingsteps".into(),
                access: vec![Access::Read, Access::Create],
                depth: Default::default(),
            }],
        }],
        ..empty_config()
    };
    let harness = Harness::start(ServiceKind::Dataverse, config).await;
    let (status, body) = send_json(
        harness
            .request(Method::POST, images)
            .json(&image_body(&update, "x", 0, "")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(error_message(&body, "0x80040220").contains("prvCreateSdkMessageProcessingStepImage"));
    let (status, body) = harness.get_json(images).await;
    assert_eq!(status, 403, "{body}");
    assert!(error_message(&body, "0x80040220").contains("prvReadSdkMessageProcessingStepImage"));
    harness.emulator.shutdown().await.expect("stops");
}

#[tokio::test]
async fn an_asynchronous_steps_context_carries_the_row_before_and_after_the_write() {
    let harness = Harness::dataverse().await;
    let hook = Endpoint::accepting().await;
    let endpoint = endpoint(&harness, &hook.url).await;
    let update = register(&harness, &endpoint, "Update", 40, 1, 1).await;
    let delete = register(&harness, &endpoint, "Delete", 40, 1, 1).await;
    let images = "sdkmessageprocessingstepimages";
    create(&harness, images, image_body(&update, "image", 2, "name")).await;
    create(&harness, images, image_body(&delete, "gone", 0, "")).await;
    let id = create(
        &harness,
        "accounts",
        json!({"name": "Before", "accountnumber": "I-1"}),
    )
    .await;
    let row = harness
        .request(Method::PATCH, &format!("accounts({id})"))
        .json(&json!({"name": "After"}));
    assert_eq!(row.send().await.expect("sent").status(), 204);
    let (status, read) = harness.get_json(&format!("accounts({id})")).await;
    assert_eq!(status, 200);
    let gone = harness.request(Method::DELETE, &format!("accounts({id})"));
    assert_eq!(gone.send().await.expect("sent").status(), 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    while hook.calls().len() < 2 {
        assert!(Instant::now() < deadline, "both contexts arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let contexts = hook.contexts();
    let (updated, deleted) = (&contexts[0], &contexts[1]);
    assert_eq!(updated["MessageName"], "Update");
    let pre = &updated["PreEntityImages"][0];
    let post = &updated["PostEntityImages"][0];
    assert_eq!(pre["key"], "image");
    assert_eq!(post["key"], "image");
    assert_eq!(attribute(&pre["value"], "name"), Some(json!("Before")));
    assert_eq!(attribute(&post["value"], "name"), Some(json!("After")));
    assert_eq!(post["value"]["Id"], id.as_str());
    assert_eq!(
        post["value"]["RowVersion"],
        read["versionnumber"].to_string()
    );
    assert_eq!(
        attribute(&post["value"], "accountnumber"),
        None,
        "only the columns asked for"
    );
    assert!(attribute(&post["value"], "versionnumber").is_none());

    assert_eq!(deleted["MessageName"], "Delete");
    assert_eq!(deleted["PostEntityImages"], json!([]));
    let whole = &deleted["PreEntityImages"][0]["value"];
    assert_eq!(deleted["PreEntityImages"][0]["key"], "gone");
    assert_eq!(attribute(whole, "name"), Some(json!("After")));
    assert_eq!(attribute(whole, "accountnumber"), Some(json!("I-1")));
    assert_eq!(attribute(whole, "accountid"), Some(json!(id)));
    assert_eq!(
        attribute(whole, "versionnumber"),
        Some(read["versionnumber"].clone())
    );
    assert_eq!(
        attribute(whole, "modifiedon"),
        Some(read["modifiedon"].clone())
    );
    assert!(
        attribute(whole, "telephone1").is_none(),
        "every column the row holds a value of"
    );
    harness.emulator.shutdown().await.expect("stops");
}
