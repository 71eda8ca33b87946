//! The plugin runtime's errors, typed apart as the house style asks:
//!
//! - what a plugin decides for a row (keep, skip, fail) is not an error at
//!   all: it is a [`RowOutcome`](super::RowOutcome);
//! - [`PluginTrap`]: the plugin's code stopped (deadline, memory, stack,
//!   panic); its instance is thrown away;
//! - [`PluginError`]: everything else: a file that is not a plugin, a
//!   contract violation, a quarantined plugin, or the host's own trouble.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why a plugin's code stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrapKind {
    /// It ran past its deadline.
    Timeout(Duration),
    /// It asked for more memory than its cap.
    OutOfMemory {
        /// The cap, in bytes.
        limit: usize,
    },
    /// It overflowed its stack.
    StackOverflow,
    /// It ran out of fuel (its instruction budget).
    OutOfFuel,
    /// It panicked; the message is the one the SDK reported, when it did.
    Panic(Option<String>),
    /// Any other trap, with wasmtime's description.
    Other(String),
}

impl TrapKind {
    /// A short name of the kind, as the `kind` label of the traps metric:
    /// `timeout`, `out-of-memory`, `stack-overflow`, `out-of-fuel`,
    /// `panic` or `other`.
    pub fn name(&self) -> &'static str {
        match self {
            TrapKind::Timeout(_) => "timeout",
            TrapKind::OutOfMemory { .. } => "out-of-memory",
            TrapKind::StackOverflow => "stack-overflow",
            TrapKind::OutOfFuel => "out-of-fuel",
            TrapKind::Panic(_) => "panic",
            TrapKind::Other(_) => "other",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrapKind::Timeout(after) => write!(f, "ran past its deadline of {after:?}"),
            TrapKind::OutOfMemory { limit } => {
                write!(
                    f,
                    "asked for more than its memory cap of {} KiB",
                    limit / 1024
                )
            }
            TrapKind::StackOverflow => f.write_str("overflowed its stack"),
            TrapKind::OutOfFuel => f.write_str("used up its fuel (instruction budget)"),
            TrapKind::Panic(Some(message)) => write!(f, "panicked: {message}"),
            TrapKind::Panic(None) => f.write_str("aborted (panicked without a message)"),
            TrapKind::Other(what) => write!(f, "trapped: {what}"),
        }
    }
}

/// A plugin's code stopped: the call failed and its instance was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin} {kind} (map `{map}`)")]
pub struct PluginTrap {
    /// The plugin, as `name@version`.
    pub plugin: String,
    /// The table map whose batch it was running.
    pub map: String,
    /// What happened.
    pub kind: TrapKind,
}

/// Loading or calling a plugin failed for a reason other than a trap.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file cannot be read.
    #[error("cannot read plugin file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error(
        "{source_name} is not a WebAssembly component (it starts with {start}); a plugin is a `.wasm` component built with `cargo xtask plugins`"
    )]
    NotWasm {
        /// Where the bytes came from.
        source_name: String,
        /// The first bytes, in hex.
        start: String,
    },
    /// A core module, not a component.
    #[error(
        "{source_name} is a core WebAssembly module, not a component; make it a component with wit-component (`cargo xtask plugins` does) against `dualwrite:plugin@{supported}`"
    )]
    CoreModule {
        /// Where the bytes came from.
        source_name: String,
        /// The contract version the host speaks.
        supported: &'static str,
    },
    /// The component is truncated or corrupt.
    #[error("{source_name} is truncated or corrupt: {detail}; rebuild the plugin")]
    Corrupt {
        /// Where the bytes came from.
        source_name: String,
        /// What the validator said.
        detail: String,
    },
    /// The component imports something the host does not give plugins.
    #[error(
        "plugin {plugin} imports `{import}`, which plugins cannot have (they may import only `dualwrite:plugin/host`); remove the dependency that pulls it in (WASI, a clock, I/O) and rebuild"
    )]
    ForbiddenImport {
        /// The plugin.
        plugin: String,
        /// The import's name.
        import: String,
    },
    /// The component was built against another version of the contract.
    #[error(
        "plugin {plugin} was built against `dualwrite:plugin@{found}`, but this host speaks `dualwrite:plugin@{supported}` (and loads the released 0.1.0); rebuild it with the matching dualwrite-plugin-sdk"
    )]
    WrongContract {
        /// The plugin.
        plugin: String,
        /// The version it uses.
        found: String,
        /// The version the host speaks.
        supported: &'static str,
    },
    /// The component imports and exports interfaces of several contract
    /// versions.
    #[error(
        "plugin {plugin} mixes contract versions {versions} in its imports and exports; rebuild it against one version with the matching dualwrite-plugin-sdk"
    )]
    MixedContract {
        /// The plugin.
        plugin: String,
        /// The versions it names.
        versions: String,
    },
    /// The component exports neither interface.
    #[error(
        "plugin {plugin} exports neither `dualwrite:plugin/filter` nor `dualwrite:plugin/transform`; put #[filter] or #[transform] on a function"
    )]
    NoExports {
        /// The plugin.
        plugin: String,
    },
    /// The map asks for an interface the plugin does not export.
    #[error("plugin {plugin} does not export `{interface}`, which map `{map}` asks for")]
    NotExported {
        /// The plugin.
        plugin: String,
        /// The missing interface.
        interface: &'static str,
        /// The map.
        map: String,
    },
    /// The plugin's limits set a fuel budget, but the runtime does not
    /// count fuel, so the budget would be ignored.
    #[error(
        "plugin {plugin}: its limits set `fuel = {fuel}`, but the plugin runtime does not count fuel, so the budget would be ignored; remove `fuel` from the plugin's `limits` (its `timeout` bounds every call), or make the runtime with `RuntimeConfig::counting_fuel_for` over the plugins' limits"
    )]
    FuelNotCounted {
        /// The plugin.
        plugin: String,
        /// The budget the limits set.
        fuel: u64,
    },
    /// wasmtime refused the component (compile or link failure).
    #[error("plugin {plugin} cannot be loaded: {detail}")]
    Incompatible {
        /// The plugin.
        plugin: String,
        /// What wasmtime said.
        detail: String,
    },
    /// The plugin's result breaks the contract.
    #[error("plugin {plugin} broke the contract on a batch of map `{map}`: {violation}")]
    Contract {
        /// The plugin.
        plugin: String,
        /// The map.
        map: String,
        /// What was wrong.
        violation: String,
    },
    /// The plugin's code stopped.
    #[error(transparent)]
    Trap(#[from] PluginTrap),
    /// The plugin failed too often in a row and is not called until an
    /// admin releases it.
    #[error(
        "plugin {plugin} is quarantined after {failures} failures in a row (last: {last}); fix or replace it, then release it"
    )]
    Quarantined {
        /// The plugin.
        plugin: String,
        /// How many calls failed in a row.
        failures: u32,
        /// The last failure.
        last: String,
    },
    /// The host could not set up the call (no instance slot free, and so on).
    #[error("plugin {plugin}: the host could not run it: {detail}")]
    Host {
        /// The plugin.
        plugin: String,
        /// What went wrong.
        detail: String,
    },
}

impl PluginError {
    /// Whether this failure counts towards quarantine: traps and contract
    /// violations do; the host's own trouble does not.
    pub fn is_plugin_fault(&self) -> bool {
        matches!(self, PluginError::Trap(_) | PluginError::Contract { .. })
    }
}
