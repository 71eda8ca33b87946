//! Logging to the host's log.
//!
//! In a component each line goes to the host's `log` import, which tags it
//! with the plugin's name and version and caps its size. Natively (unit tests
//! and the [`testing`](crate::testing) harness) lines are kept in a
//! thread-local buffer the harness hands back.

pub use crate::bindings::host::Level;

/// Writes `message` at `level`.
pub fn log(level: Level, message: &str) {
    imp::log(level, message);
}

/// Writes `message` at the trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes `message` at the debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes `message` at the info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes `message` at the warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes `message` at the error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;

    pub fn log(level: Level, message: &str) {
        crate::bindings::host::log(level, message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn log(level: Level, message: &str) {
        LINES.with(|lines| lines.borrow_mut().push((level, message.to_owned())));
    }

    /// Takes the lines logged on this thread so far.
    pub fn take() -> Vec<(Level, String)> {
        LINES.with(|lines| std::mem::take(&mut *lines.borrow_mut()))
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use imp::take;
