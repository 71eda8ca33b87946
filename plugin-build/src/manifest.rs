//! What the build needs from a plugin crate's `Cargo.toml`: its name and
//! version (the component's, too) and the file name of its core module.

use crate::BuildError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One plugin crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCrate {
    /// The package name, which is also the component's name.
    pub name: String,
    /// The package version, recorded in the component's metadata.
    pub version: String,
    /// The library's name (`[lib] name`, or the package name with `_` for
    /// `-`): cargo names the core module `<lib_name>.wasm`.
    pub lib_name: String,
    /// Its `Cargo.toml`.
    pub manifest: PathBuf,
}

#[derive(Deserialize)]
struct Manifest {
    package: Option<Package>,
    lib: Option<Lib>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: Option<toml::Value>,
}

#[derive(Deserialize)]
struct Lib {
    name: Option<String>,
    #[serde(rename = "crate-type")]
    crate_type: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct WorkspaceManifest {
    workspace: Option<Workspace>,
}

#[derive(Deserialize)]
struct Workspace {
    package: Option<WorkspacePackage>,
}

#[derive(Deserialize)]
struct WorkspacePackage {
    version: Option<String>,
}

impl PluginCrate {
    /// Reads the crate whose manifest is `manifest`. A version inherited
    /// from a workspace (`version.workspace = true`) is the workspace's.
    pub fn read(manifest: &Path) -> Result<PluginCrate, BuildError> {
        let parsed: Manifest = parse(manifest)?;
        let not_a_plugin = |problem: &str| BuildError::NotAPlugin {
            path: manifest.to_owned(),
            problem: problem.to_owned(),
        };
        let package = parsed
            .package
            .ok_or_else(|| not_a_plugin("it has no [package] table"))?;
        let version = match package.version {
            Some(toml::Value::String(version)) => version,
            Some(toml::Value::Table(table))
                if table.get("workspace") == Some(&toml::Value::Boolean(true)) =>
            {
                workspace_version(manifest)?
            }
            Some(_) => return Err(not_a_plugin("its package version is not a string")),
            // Cargo's own default when a package gives no version.
            None => "0.0.0".to_owned(),
        };
        let lib = parsed.lib.ok_or_else(|| {
            not_a_plugin("it has no [lib] table; add one with crate-type = [\"cdylib\", \"rlib\"]")
        })?;
        if !lib
            .crate_type
            .is_some_and(|types| types.iter().any(|kind| kind == "cdylib"))
        {
            return Err(not_a_plugin(
                "its [lib] is not a cdylib; set crate-type = [\"cdylib\", \"rlib\"]",
            ));
        }
        let lib_name = lib.name.unwrap_or_else(|| package.name.replace('-', "_"));
        Ok(PluginCrate {
            name: package.name,
            version,
            lib_name,
            manifest: manifest.to_owned(),
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(manifest: &Path) -> Result<T, BuildError> {
    let text = std::fs::read_to_string(manifest).map_err(BuildError::io("read", manifest))?;
    toml::from_str(&text).map_err(|source| BuildError::Manifest {
        path: manifest.to_owned(),
        source,
    })
}

/// The `[workspace.package] version` of the nearest `Cargo.toml` above
/// `manifest` that has a `[workspace]` table.
fn workspace_version(manifest: &Path) -> Result<String, BuildError> {
    let start = manifest.parent().and_then(Path::parent);
    for dir in start.into_iter().flat_map(Path::ancestors) {
        let candidate = dir.join("Cargo.toml");
        if !candidate.is_file() {
            continue;
        }
        let parsed: WorkspaceManifest = parse(&candidate)?;
        if let Some(workspace) = parsed.workspace {
            return workspace
                .package
                .and_then(|package| package.version)
                .ok_or_else(|| BuildError::NotAPlugin {
                    path: manifest.to_owned(),
                    problem: format!(
                        "it inherits its version, but {} has no [workspace.package] version",
                        candidate.display()
                    ),
                });
        }
    }
    Err(BuildError::NotAPlugin {
        path: manifest.to_owned(),
        problem: "it inherits its version (version.workspace = true) but no workspace \
                  manifest is above it"
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate at `dir/plugin` with `manifest`, under `dir` with `root`
    /// (when given) as the manifest above it.
    fn read(manifest: &str, root: Option<&str>) -> Result<PluginCrate, BuildError> {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(root) = root {
            std::fs::write(dir.path().join("Cargo.toml"), root).expect("write root");
        }
        let plugin = dir.path().join("plugin");
        std::fs::create_dir(&plugin).expect("crate dir");
        std::fs::write(plugin.join("Cargo.toml"), manifest).expect("write manifest");
        PluginCrate::read(&plugin.join("Cargo.toml"))
    }

    const LIB: &str = "[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n";

    #[test]
    fn reads_name_version_and_the_core_module_name() {
        let plugin = read(
            &format!("[package]\nname = \"my-filter\"\nversion = \"1.2.3\"\n{LIB}"),
            None,
        )
        .expect("a plugin crate");
        assert_eq!(plugin.name, "my-filter");
        assert_eq!(plugin.version, "1.2.3");
        assert_eq!(plugin.lib_name, "my_filter");

        let named = read(
            "[package]\nname = \"my-filter\"\n[lib]\nname = \"filter\"\ncrate-type = [\"cdylib\"]\n",
            None,
        )
        .expect("a plugin crate");
        assert_eq!(named.lib_name, "filter");
        assert_eq!(named.version, "0.0.0", "cargo's default");
    }

    #[test]
    fn an_inherited_version_is_the_workspace_s() {
        let plugin = read(
            &format!("[package]\nname = \"p\"\nversion.workspace = true\n{LIB}"),
            Some("[workspace]\nmembers = [\"plugin\"]\n[workspace.package]\nversion = \"0.7.0\"\n"),
        )
        .expect("a plugin crate");
        assert_eq!(plugin.version, "0.7.0");

        let error = read(
            &format!("[package]\nname = \"p\"\nversion.workspace = true\n{LIB}"),
            Some("[workspace]\n"),
        )
        .expect_err("no version to inherit");
        assert!(
            error
                .to_string()
                .contains("has no [workspace.package] version"),
            "{error}"
        );
    }

    #[test]
    fn a_crate_that_makes_no_cdylib_is_refused_saying_what_to_add() {
        let error = read("[package]\nname = \"p\"\n[lib]\n", None).expect_err("no cdylib");
        let message = error.to_string();
        assert!(message.contains("is not a plugin crate"), "{message}");
        assert!(
            message.contains("crate-type = [\"cdylib\", \"rlib\"]"),
            "{message}"
        );

        let error = read("[workspace]\n", None).expect_err("no package");
        assert!(
            error.to_string().contains("has no [package] table"),
            "{error}"
        );

        let error = read("[package\n", None).expect_err("not TOML");
        assert!(matches!(error, BuildError::Manifest { .. }), "{error}");
    }
}
