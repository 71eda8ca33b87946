//! What one plugin call may use ([`PluginLimits`]) and the per-store state
//! that enforces it ([`StoreState`]): the memory and table limiter, the
//! wall-clock deadline, and the capped log of the call.

use super::bindings::{Level, v0_1, v0_2};
use std::time::{Duration, Instant};
use wasmtime::ResourceLimiter;

/// The budget of a plugin's calls. Defaults suit a batch of up to a
/// thousand rows; a map can set its own per plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Wall-clock time one batch may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Bytes of linear memory an instance may grow to (at most
    /// [`MAX_MEMORY`](super::engine::MAX_MEMORY)).
    pub memory: usize,
    /// Table elements an instance may have.
    pub table_elements: usize,
    /// Instructions one batch may execute. Only a runtime that counts fuel
    /// loads a plugin with a budget (see
    /// [`RuntimeConfig::counting_fuel_for`](super::RuntimeConfig::counting_fuel_for)).
    pub fuel: Option<u64>,
    /// Bytes of output (text, names, messages) one batch may return.
    pub max_output_bytes: usize,
    /// Log lines one batch may write; the rest are counted and dropped.
    pub log_lines: usize,
    /// Bytes of one log line; longer lines are cut.
    pub log_line_bytes: usize,
    /// Failures in a row (traps and contract violations) after which the
    /// plugin is quarantined.
    pub quarantine_after: u32,
    /// Calls an instance serves before it is replaced by a fresh one.
    pub calls_per_instance: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            timeout: Duration::from_secs(5),
            memory: 64 << 20,
            table_elements: 10_000,
            fuel: None,
            max_output_bytes: 16 << 20,
            log_lines: 100,
            log_line_bytes: 1024,
            quarantine_after: 3,
            calls_per_instance: 10_000,
        }
    }
}

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// Its level.
    pub level: &'static str,
    /// Its text, cut to the line cap.
    pub message: String,
}

/// The data of a plugin's store.
pub struct StoreState {
    pub(super) plugin: String,
    pub(super) limits: PluginLimits,
    pub(super) deadline: Instant,
    pub(super) timed_out: bool,
    pub(super) memory_refused: bool,
    pub(super) peak_memory: usize,
    pub(super) logs: Vec<LogLine>,
    pub(super) dropped_logs: u64,
    pub(super) panic: Option<String>,
}

impl StoreState {
    pub(super) fn new(plugin: String, limits: PluginLimits) -> Self {
        StoreState {
            plugin,
            limits,
            deadline: Instant::now(),
            timed_out: false,
            memory_refused: false,
            peak_memory: 0,
            logs: Vec::new(),
            dropped_logs: 0,
            panic: None,
        }
    }

    /// Gets the state ready for a new call.
    pub(super) fn start_call(&mut self) {
        self.deadline = Instant::now() + self.limits.timeout;
        self.timed_out = false;
        self.memory_refused = false;
        self.logs.clear();
        self.dropped_logs = 0;
        self.panic = None;
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory {
            self.memory_refused = true;
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.limits.table_elements)
    }
}

impl v0_1::dualwrite::plugin::types::Host for StoreState {}

impl v0_1::dualwrite::plugin::host::Host for StoreState {
    fn log(&mut self, level: Level, message: String) {
        self.write_log(level, message);
    }
}

impl v0_2::dualwrite::plugin::types::Host for StoreState {}

impl v0_2::dualwrite::plugin::host::Host for StoreState {
    fn log(&mut self, level: v0_2::dualwrite::plugin::host::Level, message: String) {
        use v0_2::dualwrite::plugin::host::Level as Current;
        let level = match level {
            Current::Trace => Level::Trace,
            Current::Debug => Level::Debug,
            Current::Info => Level::Info,
            Current::Warn => Level::Warn,
            Current::Error => Level::Error,
        };
        self.write_log(level, message);
    }
}

impl StoreState {
    fn write_log(&mut self, level: Level, message: String) {
        let level = level_name(level);
        if level == "error" && message.starts_with("panicked at ") && self.panic.is_none() {
            self.panic = Some(cut(&message, self.limits.log_line_bytes));
        }
        if self.logs.len() >= self.limits.log_lines {
            self.dropped_logs += 1;
            return;
        }
        let message = cut(&message, self.limits.log_line_bytes);
        let plugin = self.plugin.as_str();
        match level {
            "error" => tracing::error!(%plugin, "{message}"),
            "warn" => tracing::warn!(%plugin, "{message}"),
            "info" => tracing::info!(%plugin, "{message}"),
            "debug" => tracing::debug!(%plugin, "{message}"),
            _ => tracing::trace!(%plugin, "{message}"),
        }
        self.logs.push(LogLine { level, message });
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when
/// it was cut, and with control characters escaped so a plugin cannot forge
/// log lines or terminal sequences.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut line = String::with_capacity(end + 3);
    for c in text[..end].chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    if end < text.len() {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn lines_are_cut_on_a_character_boundary_and_escaped() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééé", 3), "é…", "never splits a character");
        assert_eq!(
            cut("a\nfake line\u{1b}[31m", 100),
            "a\\nfake line\\u{1b}[31m"
        );
    }
}
