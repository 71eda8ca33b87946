//! [`Context`]: what the host tells a plugin about a batch, and typed access
//! to the plugin's settings.

use crate::bindings::types;
use crate::error::SettingError;
use std::cell::RefCell;
use std::str::FromStr;

pub use crate::bindings::types::Direction;

/// The table map, direction, company and settings a batch comes with.
#[derive(Debug, Clone)]
pub struct Context {
    inner: types::Context,
    /// For each setting, its comma-separated items (trimmed, not empty) as
    /// byte ranges of its value: split once per batch, not once per row.
    items: Vec<Vec<(usize, usize)>>,
    /// Set only by the native harness, to ask a plugin function which
    /// fields it reads (see [`ReadsProbe`]).
    probe: Option<ReadsProbe>,
}

/// How the native harness learns the fields a plugin function declares it
/// reads: it calls the function once with a context that carries a probe,
/// and the function `#[filter(reads = …)]` or `#[transform(reads = …)]`
/// made answers into it instead of running. Not for plugin authors.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct ReadsProbe(RefCell<Option<Option<Vec<String>>>>);

impl ReadsProbe {
    /// Records the function's answer.
    pub fn answer(&self, reads: Option<Vec<String>>) {
        *self.0.borrow_mut() = Some(reads);
    }
}

impl Context {
    /// A context for the map `table_map` flowing in `direction`, with no
    /// company and no settings (see [`Context::with_setting`]).
    pub fn new(table_map: impl Into<String>, direction: Direction) -> Self {
        Context {
            inner: types::Context {
                table_map: table_map.into(),
                direction,
                company: None,
                settings: Vec::new(),
            },
            items: Vec::new(),
            probe: None,
        }
    }

    /// This context, with the company set.
    pub fn with_company(mut self, company: impl Into<String>) -> Self {
        self.inner.company = Some(company.into());
        self
    }

    /// This context, with one more setting.
    pub fn with_setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        self.items.push(items(&value));
        self.inner.settings.push((name.into(), value));
        self
    }

    /// The name of the table map.
    pub fn table_map(&self) -> &str {
        &self.inner.table_map
    }

    /// The direction the batch flows in.
    pub fn direction(&self) -> Direction {
        self.inner.direction
    }

    /// The company (`dataAreaId`) of the batch, for maps striped by company.
    pub fn company(&self) -> Option<&str> {
        self.inner.company.as_deref()
    }

    /// The setting `name` as configured, if it is set. When a setting is
    /// given twice, the last one wins.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.position(name)
            .map(|index| self.inner.settings[index].1.as_str())
    }

    /// The index of the setting `name` (its last occurrence).
    fn position(&self, name: &str) -> Option<usize> {
        self.inner
            .settings
            .iter()
            .rposition(|(key, _)| crate::value::same(key, name))
    }

    /// The setting `name`, or an error saying it is required.
    pub fn required(&self, name: &str) -> Result<&str, SettingError> {
        self.setting(name).ok_or_else(|| SettingError::Missing {
            name: name.to_owned(),
        })
    }

    /// The setting `name` parsed as a `T`, or `default` when it is not set.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, SettingError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.setting(name) {
            None => Ok(default),
            Some(value) => parse(name, value),
        }
    }

    /// The setting `name` parsed as a `T`; an error when it is not set.
    pub fn parse<T>(&self, name: &str) -> Result<T, SettingError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        parse(name, self.required(name)?)
    }

    /// The setting `name` as a comma-separated list of trimmed, non-empty
    /// items; empty when it is not set.
    pub fn list(&self, name: &str) -> impl Iterator<Item = &str> {
        let (value, items) = match self.position(name) {
            Some(index) => (
                self.inner.settings[index].1.as_str(),
                self.items[index].as_slice(),
            ),
            None => ("", &[][..]),
        };
        items
            .iter()
            .map(move |&(start, end)| value.get(start..end).unwrap_or_default())
    }

    /// All settings, in the order they were written.
    pub fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .settings
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// The probe this context carries, when the native harness asks which
    /// fields a function reads. Not for plugin authors.
    #[doc(hidden)]
    pub fn __reads_probe(&self) -> Option<&ReadsProbe> {
        self.probe.as_ref()
    }

    /// Asks `run` (a plugin function) which fields it reads under this
    /// context: `None` when it declares none (it reads every field).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn ask_reads(&self, run: impl FnOnce(&Context)) -> Option<Vec<String>> {
        let probing = Context {
            inner: types::Context {
                company: None,
                ..self.inner.clone()
            },
            items: self.items.clone(),
            probe: Some(ReadsProbe::default()),
        };
        run(&probing);
        probing
            .probe
            .and_then(|probe| probe.0.into_inner())
            .flatten()
    }
}

impl From<types::Context> for Context {
    fn from(inner: types::Context) -> Self {
        Context {
            items: inner
                .settings
                .iter()
                .map(|(_, value)| items(value))
                .collect(),
            inner,
            probe: None,
        }
    }
}

/// The comma-separated items of `value`, trimmed, empty ones left out, as
/// byte ranges.
fn items(value: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for piece in value.split(',') {
        let trimmed = piece.trim();
        if !trimmed.is_empty() {
            let offset = start + (trimmed.as_ptr() as usize - piece.as_ptr() as usize);
            ranges.push((offset, offset + trimmed.len()));
        }
        start += piece.len() + 1;
    }
    ranges
}

impl From<Context> for types::Context {
    fn from(context: Context) -> Self {
        context.inner
    }
}

fn parse<T>(name: &str, value: &str) -> Result<T, SettingError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|error: T::Err| SettingError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context::new("customers", Direction::LeftToRight)
            .with_setting("places", "2")
            .with_setting("companies", " usmf, demf,,")
            .with_setting("places", "4")
    }

    #[test]
    fn the_last_setting_wins() {
        assert_eq!(context().parse::<u32>("places"), Ok(4));
    }

    #[test]
    fn lists_are_trimmed_and_skip_empty_items() {
        assert_eq!(
            context().list("companies").collect::<Vec<_>>(),
            ["usmf", "demf"]
        );
        assert_eq!(context().list("nothing").count(), 0);
    }

    #[test]
    fn a_bad_setting_names_itself() {
        let error = Context::new("m", Direction::RightToLeft)
            .with_setting("places", "two")
            .parse::<u32>("places")
            .expect_err("not a number");
        assert_eq!(
            error.to_string(),
            "setting `places` = `two` is invalid: invalid digit found in string"
        );
        let missing = context().parse::<u32>("scale").expect_err("unset");
        assert!(missing.to_string().contains("setting `scale` is required"));
    }
}
