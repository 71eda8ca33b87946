//! What the tests that run `dualwrite run` between two emulators share:
//! the connectors' credentials of an emulator, and the config's two
//! `[systems]` sections (secrets read from `FO_SECRET` and `DV_SECRET`).

use dualwrite::connector::Credentials;
use dualwrite_emulators::RunningEmulator;

/// The emulators' default client, as a connector signs in.
pub fn credentials(emulator: &RunningEmulator) -> Credentials {
    Credentials {
        token_url: emulator.token_url(),
        client_id: "dualwrite".into(),
        client_secret: "dualwrite-secret".into(),
        scope: format!("{}/.default", emulator.url()),
    }
}

/// `[systems.finops]` and `[systems.dataverse]` of a config for these two
/// emulators.
pub fn systems(finops: &RunningEmulator, dataverse: &RunningEmulator) -> String {
    format!(
        r#"
[systems.finops]
kind = "finops"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "FO_SECRET" }}

[systems.dataverse]
kind = "dataverse"
url = "{}"
auth = {{ token_url = "{}", client_id = "dualwrite", client_secret_env = "DV_SECRET" }}
"#,
        finops.service_url(),
        finops.token_url(),
        dataverse.service_url(),
        dataverse.token_url()
    )
}
