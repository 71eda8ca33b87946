//! A map's reference to a registry plugin: `name`, `name@version` (that
//! version exactly) or `name@REQ` with a semver requirement as Cargo
//! writes them (`^1.2`, `~1.2.3`, `>=1, <2`, `1.*`). Page:
//! <https://docs.rs/semver/latest/semver/struct.VersionReq.html>.

use std::fmt;
use std::str::FromStr;

use semver::{Version, VersionReq};

/// `name[@requirement]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin's name.
    pub name: String,
    /// The versions it accepts; `None` for any.
    req: Option<VersionReq>,
    /// An exact version (`name@1.2.3`).
    exact: Option<Version>,
}

impl PluginRef {
    /// Whether `version` meets the reference.
    pub fn matches(&self, version: &str) -> bool {
        let Ok(version) = Version::parse(version) else {
            return false;
        };
        match (&self.exact, &self.req) {
            (Some(exact), _) => *exact == version,
            (None, Some(req)) => req.matches(&version),
            (None, None) => true,
        }
    }

    /// The requirement as written (`*` for any).
    pub fn requirement(&self) -> String {
        match (&self.exact, &self.req) {
            (Some(exact), _) => exact.to_string(),
            (None, Some(req)) => req.to_string(),
            (None, None) => "*".into(),
        }
    }

    /// The reference to exactly `name@version`.
    pub fn exact(name: &str, version: &str) -> Result<PluginRef, String> {
        format!("{name}@{version}").parse()
    }

    /// Whether it pins one version.
    pub fn is_exact(&self) -> bool {
        self.exact.is_some()
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.exact, &self.req) {
            (None, None) => write!(f, "{}", self.name),
            _ => write!(f, "{}@{}", self.name, self.requirement()),
        }
    }
}

impl FromStr for PluginRef {
    type Err = String;

    fn from_str(text: &str) -> Result<PluginRef, String> {
        let (name, requirement) = match text.split_once('@') {
            Some((name, requirement)) => (name.trim(), Some(requirement.trim())),
            None => (text.trim(), None),
        };
        check_name(name)?;
        let (req, exact) = match requirement {
            None | Some("*") => (None, None),
            Some("") => {
                return Err(format!(
                    "`{text}` names no version after `@`: write `{name}@1.2.3` or `{name}@^1.2`"
                ));
            }
            Some(requirement) => match Version::parse(requirement) {
                Ok(version) => (None, Some(version)),
                Err(_) => match VersionReq::parse(requirement) {
                    Ok(req) => (Some(req), None),
                    Err(error) => {
                        return Err(format!(
                            "`{requirement}` in `{text}` is neither a version nor a semver requirement ({error}): write `{name}@1.2.3` or `{name}@^1.2`"
                        ));
                    }
                },
            },
        };
        Ok(PluginRef {
            name: name.to_owned(),
            req,
            exact,
        })
    }
}

/// Whether `name` may name a plugin: letters, digits, `-` and `_`, as a
/// crate name.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "`{name}` is not a plugin name: use letters, digits, `-` and `_` (as a crate name), at most 64"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_pins_a_version_or_meets_a_requirement() {
        let exact: PluginRef = "phone-normalize@1.2.3".parse().expect("exact");
        assert!(exact.is_exact());
        assert!(exact.matches("1.2.3"));
        assert!(!exact.matches("1.2.4"));
        let caret: PluginRef = "phone-normalize@^1.2".parse().expect("caret");
        assert!(caret.matches("1.9.0"));
        assert!(!caret.matches("2.0.0"));
        assert!(!caret.matches("1.1.9"));
        let any: PluginRef = "phone-normalize".parse().expect("any");
        assert!(any.matches("0.0.1"));
        assert_eq!(any.to_string(), "phone-normalize");
        assert_eq!(caret.to_string(), "phone-normalize@^1.2");
    }

    #[test]
    fn a_bad_reference_says_how_to_write_one() {
        let error = "x@".parse::<PluginRef>().expect_err("empty");
        assert!(error.contains("x@1.2.3"), "{error}");
        let error = "x@one".parse::<PluginRef>().expect_err("words");
        assert!(error.contains("neither a version"), "{error}");
        let error = "a b@1".parse::<PluginRef>().expect_err("name");
        assert!(error.contains("not a plugin name"), "{error}");
    }
}
