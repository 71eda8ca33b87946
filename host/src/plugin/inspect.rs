//! Looking at a `.wasm` file before compiling it: is it a component, of a
//! contract version the host loads (the current one or a released one),
//! importing only what plugins may import, exporting a filter or a
//! transform? And what are its name and version?
//!
//! Everything here reads bytes with `wasmparser` and `wasm-metadata`; nothing
//! is compiled or run, so `dualwrite plugin check` can explain a refusal
//! without touching wasmtime.

use super::bindings::{
    ALLOWED_IMPORTS, CONTRACT_VERSION, FILTER_EXPORT, FILTER_EXPORT_0_1, RELEASED_VERSIONS,
    TRANSFORM_EXPORT, TRANSFORM_EXPORT_0_1,
};
use super::error::PluginError;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// What a component is and what it wants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inspection {
    /// The name in its metadata (or the name it was loaded under).
    pub name: String,
    /// The version in its metadata, if any.
    pub version: Option<String>,
    /// Its top-level imports.
    pub imports: Vec<String>,
    /// Its top-level exports.
    pub exports: Vec<String>,
}

impl Inspection {
    /// `name@version`, or `name` when it has no version.
    pub fn id(&self) -> String {
        match &self.version {
            Some(version) => format!("{}@{version}", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether it exports the filter interface (of any version the host
    /// loads).
    pub fn exports_filter(&self) -> bool {
        self.exports
            .iter()
            .any(|name| name == FILTER_EXPORT || name == FILTER_EXPORT_0_1)
    }

    /// Whether it exports the transform interface (of any version the host
    /// loads).
    pub fn exports_transform(&self) -> bool {
        self.exports
            .iter()
            .any(|name| name == TRANSFORM_EXPORT || name == TRANSFORM_EXPORT_0_1)
    }

    /// The contract version its `dualwrite:plugin` imports and exports name
    /// (the first one, when they name several).
    pub fn contract(&self) -> Option<&str> {
        self.imports
            .iter()
            .chain(&self.exports)
            .find_map(|name| contract_version(name))
    }

    /// Whether it was built against the released contract 0.1.0.
    pub fn is_released_0_1(&self) -> bool {
        self.contract() == Some("0.1.0")
    }

    /// Every reason the host would refuse it (empty: it would be accepted).
    pub fn problems(&self) -> Vec<PluginError> {
        let plugin = self.id();
        let mut problems = Vec::new();
        let mut unknown = None;
        let mut versions: Vec<&str> = Vec::new();
        for name in self.imports.iter().chain(&self.exports) {
            let Some(version) = contract_version(name) else {
                continue;
            };
            if version != CONTRACT_VERSION && !RELEASED_VERSIONS.contains(&version) {
                unknown.get_or_insert_with(|| version.to_owned());
            } else if !versions.contains(&version) {
                versions.push(version);
            }
        }
        if let Some(found) = unknown {
            problems.push(PluginError::WrongContract {
                plugin: plugin.clone(),
                found,
                supported: CONTRACT_VERSION,
            });
        } else if versions.len() > 1 {
            problems.push(PluginError::MixedContract {
                plugin: plugin.clone(),
                versions: versions.join(" and "),
            });
        }
        for import in &self.imports {
            if !ALLOWED_IMPORTS.contains(&import.as_str()) && contract_version(import).is_none() {
                problems.push(PluginError::ForbiddenImport {
                    plugin: plugin.clone(),
                    import: import.clone(),
                });
            }
        }
        if problems.is_empty() && !self.exports_filter() && !self.exports_transform() {
            problems.push(PluginError::NoExports { plugin });
        }
        problems
    }
}

/// Reads `bytes` (from `source_name`, for messages): refuses what is not a
/// valid component, and lists what a component imports and exports.
pub fn inspect(source_name: &str, bytes: &[u8]) -> Result<Inspection, PluginError> {
    if !bytes.starts_with(b"\0asm") {
        let start = bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>();
        return Err(PluginError::NotWasm {
            source_name: source_name.to_owned(),
            start: if start.is_empty() {
                "nothing: the file is empty".into()
            } else {
                start.join(" ")
            },
        });
    }
    if Parser::is_core_wasm(bytes) {
        return Err(PluginError::CoreModule {
            source_name: source_name.to_owned(),
            supported: CONTRACT_VERSION,
        });
    }
    let corrupt = |detail: String| PluginError::Corrupt {
        source_name: source_name.to_owned(),
        detail,
    };
    if !Parser::is_component(bytes) {
        return Err(corrupt(
            "its header is neither a module's nor a component's".into(),
        ));
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|error| corrupt(error.to_string()))?;

    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|error| corrupt(error.to_string()))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(|error| corrupt(error.to_string()))?;
                    imports.push(import.name.0.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|error| corrupt(error.to_string()))?;
                    exports.push(export.name.0.to_owned());
                }
            }
            _ => {}
        }
    }
    let (name, version) = metadata(bytes);
    Ok(Inspection {
        name: name.unwrap_or_else(|| file_stem(source_name)),
        version,
        imports,
        exports,
    })
}

/// The name and version in the component's metadata.
fn metadata(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match wasm_metadata::Payload::from_binary(bytes) {
        Ok(payload) => {
            let metadata = payload.metadata();
            (
                metadata.name.clone(),
                metadata.version.as_ref().map(|version| version.to_string()),
            )
        }
        Err(_) => (None, None),
    }
}

/// The version of a `dualwrite:plugin/…@version` name.
fn contract_version(name: &str) -> Option<&str> {
    name.strip_prefix("dualwrite:plugin/")?
        .split_once('@')
        .map(|(_, version)| version)
}

fn file_stem(source_name: &str) -> String {
    std::path::Path::new(source_name)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| source_name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_and_empty_files_are_named() {
        let error = inspect("logo.png", b"\x89PNG\r\n\x1a\n...").expect_err("not wasm");
        assert!(
            error
                .to_string()
                .contains("logo.png is not a WebAssembly component (it starts with 89 50 4e 47")
        );
        let error = inspect("empty.wasm", b"").expect_err("empty");
        assert!(error.to_string().contains("the file is empty"));
    }

    #[test]
    fn a_core_module_is_told_apart() {
        let error = inspect("core.wasm", b"\0asm\x01\0\0\0").expect_err("core");
        assert!(matches!(error, PluginError::CoreModule { .. }), "{error}");
    }

    #[test]
    fn a_truncated_component_is_corrupt() {
        let error = inspect("cut.wasm", b"\0asm\x0d\0\x01\0\x07\x05").expect_err("cut");
        assert!(matches!(error, PluginError::Corrupt { .. }), "{error}");
    }

    #[test]
    fn imports_are_judged_by_name_and_version() {
        let inspection = |imports: &[&str], exports: &[&str]| Inspection {
            name: "p".into(),
            version: Some("1.0.0".into()),
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        };
        assert!(
            inspection(&ALLOWED_IMPORTS[..2], &[TRANSFORM_EXPORT])
                .problems()
                .is_empty()
        );
        let problems = inspection(&["wasi:clocks/wall-clock@0.2.0"], &[FILTER_EXPORT]).problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .contains("imports `wasi:clocks/wall-clock@0.2.0`")
        );
        let problems = inspection(&[], &["dualwrite:plugin/transform@0.3.0"]).problems();
        assert!(
            problems[0]
                .to_string()
                .contains("built against `dualwrite:plugin@0.3.0`")
        );
        let released = inspection(
            &["dualwrite:plugin/host@0.1.0"],
            &["dualwrite:plugin/filter@0.1.0"],
        );
        assert!(released.problems().is_empty(), "0.1.0 still loads");
        assert!(released.is_released_0_1() && released.exports_filter());
        let problems = inspection(&["dualwrite:plugin/host@0.1.0"], &[FILTER_EXPORT]).problems();
        assert!(
            problems[0]
                .to_string()
                .contains("mixes contract versions 0.1.0 and 0.2.0"),
            "{}",
            problems[0]
        );
        let problems = inspection(&[], &["other:thing/run"]).problems();
        assert!(matches!(problems[0], PluginError::NoExports { .. }));
    }
}
