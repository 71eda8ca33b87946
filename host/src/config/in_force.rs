//! The maps in force on a host: the config file's entries, each replaced
//! by the version an admin put in force on the host (a hot swap, an
//! apply, a rollback, an import; [`Applied`]) while the file's entry is
//! still the one it was applied over. An entry edited, added or taken out
//! since wins: the file is where an admin's last word is then. A map an
//! admin added that the file never had stays in force as long as the file
//! has no entry of its name.

use super::{Config, MapConfig};
use crate::checkpoint::{Applied, CheckpointError, Checkpoints, definition_sha256};

/// The config with the applied versions in force.
#[derive(Debug, Clone)]
pub struct InForce {
    /// The config file's config, its maps as they run.
    pub config: Config,
    /// The maps that run an applied version, with that version.
    pub applied: Vec<(String, u32)>,
    /// The maps whose applied record the file overrides (its entry
    /// changed, was added or taken out since), or whose version the store
    /// cannot give back: their file entry runs, and a starting host drops
    /// their records.
    pub overridden: Vec<String>,
}

/// `config` with the versions an admin applied on the host of `store` in
/// force. Reads the store only.
pub fn in_force(config: &Config, store: &Checkpoints) -> Result<InForce, CheckpointError> {
    let mut config = config.clone();
    let mut applied = Vec::new();
    let mut overridden = Vec::new();
    for (map, record) in store.applied_maps()? {
        let slot = config.maps.iter().position(|m| m.name == map);
        let entry = slot.map(|at| definition_sha256(&config.maps[at].definition));
        if entry != record.config_sha256 {
            overridden.push(map);
            continue;
        }
        let Some(definition) = definition_of(store, &map, &record)? else {
            tracing::warn!(map = %map, version = record.version, "The map version an admin applied is not in the store; the config file's entry runs.");
            overridden.push(map);
            continue;
        };
        match slot {
            Some(at) => config.maps[at] = definition,
            None => config.maps.push(definition),
        }
        applied.push((map, record.version));
    }
    Ok(InForce {
        config,
        applied,
        overridden,
    })
}

fn definition_of(
    store: &Checkpoints,
    map: &str,
    record: &Applied,
) -> Result<Option<MapConfig>, CheckpointError> {
    let Some(version) = store
        .map_versions(map)?
        .into_iter()
        .find(|v| v.version == record.version)
    else {
        return Ok(None);
    };
    Ok(MapConfig::from_definition(&version.definition)
        .ok()
        .filter(|m| m.name == map))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[systems.fo]
kind = "finops"
url = "https://fo.example"
[systems.dv]
kind = "dataverse"
url = "https://dv.example"

[[maps]]
name = "one"
left = { system = "fo", table = "CustomersV3" }
right = { system = "dv", table = "accounts" }
key = ["CUSTOMERACCOUNT = accountnumber"]
fields = ["NAME = name"]

[[maps]]
name = "two"
left = { system = "fo", table = "VendorsV2" }
right = { system = "dv", table = "accounts" }
key = ["VENDORACCOUNTNUMBER = accountnumber"]
fields = ["NAME = name"]
"#;

    fn with_fields(map: &MapConfig, fields: &[&str]) -> MapConfig {
        let mut definition = map.definition.clone();
        definition["fields"] = serde_json::json!(fields);
        MapConfig::from_definition(&definition).expect("definition")
    }

    fn apply(store: &Checkpoints, config: &Config, map: &MapConfig) -> u32 {
        let version = store
            .store_map_version(&map.name, &map.definition)
            .expect("version");
        let entry = config.maps.iter().find(|m| m.name == map.name);
        store
            .set_applied_map(
                &map.name,
                version,
                &map.definition,
                entry.map(|m| definition_sha256(&m.definition)),
            )
            .expect("applied");
        version
    }

    #[test]
    fn an_applied_version_runs_until_the_files_entry_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Checkpoints::open(dir.path()).expect("open");
        let config = Config::from_toml("dualwrite.toml", FILE).expect("config");
        for map in &config.maps {
            store
                .register_map_version(&map.name, &map.definition)
                .expect("start");
        }
        let swapped = with_fields(&config.maps[0], &["NAME = name", "PHONE = telephone1"]);
        assert_eq!(apply(&store, &config, &swapped), 2);
        let mut added = with_fields(&config.maps[1], &["NAME = name"]);
        added.definition["name"] = serde_json::json!("three");
        let added = MapConfig::from_definition(&added.definition).expect("added");
        apply(&store, &config, &added);

        let now = in_force(&config, &store).expect("in force");
        assert_eq!(now.applied, vec![("one".into(), 2), ("three".into(), 1)]);
        assert!(now.overridden.is_empty());
        let names: Vec<&str> = now.config.maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "three"]);
        assert_eq!(now.config.maps[0].definition, swapped.definition);
        assert_eq!(now.config.maps[1].definition, config.maps[1].definition);

        // The file's entry of `one` edited, and a `three` added to it: the
        // file wins both.
        let edited = FILE.replace(
            "fields = [\"NAME = name\"]\n\n[[maps]]\nname = \"two\"",
            "fields = [\"NAME = name\", \"CITY = address1_city\"]\n\n[[maps]]\nname = \"two\"",
        ) + "\n[[maps]]\nname = \"three\"\nleft = { system = \"fo\", table = \"VendorsV2\" }\nright = { system = \"dv\", table = \"contacts\" }\nkey = [\"VENDORACCOUNTNUMBER = emailaddress1\"]\nfields = [\"NAME = lastname\"]\n";
        let config = Config::from_toml("dualwrite.toml", &edited).expect("edited");
        let now = in_force(&config, &store).expect("in force");
        assert!(now.applied.is_empty(), "{:?}", now.applied);
        assert_eq!(now.overridden, ["one", "three"]);
        assert_eq!(now.config.maps.len(), 3);
        assert_eq!(now.config.maps[0].definition, config.maps[0].definition);
    }
}
