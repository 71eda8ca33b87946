//! `dualwrite run --watch`: the config file is watched (with `notify`,
//! its folder, so that an editor's save-by-rename is seen too), and each
//! change is applied as a hot swap of its maps: the entries the change
//! touched (changed or new since the file was last read) are validated
//! merged into the running config, with the host's registry and
//! catalogue, and take their new version between batches
//! ([`RunningEngine::apply_config_file`]); a version an admin applied over
//! an entry the change left alone keeps running. A file that does not
//! parse or validate changes nothing; its problems are logged. Other
//! sections (`[systems]`, `[engine]`, `[alerts]`) and maps taken out of
//! the file are not applied: they are logged as needing a restart (or
//! `dualwrite map stop`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher as _;
use sha2::{Digest, Sha256};

use dualwrite::config::Config;
use dualwrite::sync::{Change, RunningEngine, SwapError};

/// A watch running; dropped, it ends.
pub(crate) struct Watch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `file`, applying its changes to `engine`.
pub(crate) fn spawn(engine: Arc<RunningEngine>, file: PathBuf) -> anyhow::Result<Watch> {
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel::<()>();
    let name = file.file_name().map(ToOwned::to_owned);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let ours = match &event {
            Ok(event) => event
                .paths
                .iter()
                .any(|path| path.file_name() == name.as_deref()),
            Err(_) => true,
        };
        if ours {
            let _ = changed.send(());
        }
    })?;
    let folder = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    watcher.watch(&folder, notify::RecursiveMode::NonRecursive)?;
    let mut applied = digest(&file);
    // The entries as the file last had them: only those it changes are
    // applied, so a version an admin put in force over an entry the edit
    // left alone keeps running.
    let mut entries = definitions(&file);
    let task = tokio::spawn(async move {
        while changes.recv().await.is_some() {
            // An editor writes in steps: take the file once they settle.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while changes.try_recv().is_ok() {}
            let now = digest(&file);
            if now.is_none() || now == applied {
                continue;
            }
            applied = now;
            if let Some(read) = reload(&engine, &file, &entries).await {
                entries = read;
            }
        }
    });
    Ok(Watch {
        _watcher: watcher,
        task,
    })
}

fn digest(file: &Path) -> Option<Vec<u8>> {
    std::fs::read(file)
        .ok()
        .map(|bytes| Sha256::digest(bytes).to_vec())
}

/// Each map's entry in `file` (none when it does not parse).
fn definitions(file: &Path) -> HashMap<String, serde_json::Value> {
    Config::load(file)
        .map(|config| of(&config))
        .unwrap_or_default()
}

fn of(config: &Config) -> HashMap<String, serde_json::Value> {
    config
        .maps
        .iter()
        .map(|m| (m.name.clone(), m.definition.clone()))
        .collect()
}

/// Applies the maps of `file` whose entries differ from `before` to
/// `engine`, logging what came of it; the entries applied, or none when
/// nothing was (to be tried again at the next change).
async fn reload(
    engine: &RunningEngine,
    file: &Path,
    before: &HashMap<String, serde_json::Value>,
) -> Option<HashMap<String, serde_json::Value>> {
    let shown = file.display().to_string();
    let config = match Config::load(file) {
        Ok(config) => config,
        Err(error) => {
            tracing::warn!(file = %shown, %error, "The changed config file does not parse; nothing changed.");
            return None;
        }
    };
    let entries = of(&config);
    // Taken out by this change (a map an admin added, never in the file,
    // is not).
    let mut gone: Vec<&String> = before
        .keys()
        .filter(|name| !entries.contains_key(*name))
        .collect();
    gone.sort();
    for gone in gone {
        tracing::warn!(file = %shown, map = %gone, "A map is no longer in the config file; it keeps running until `dualwrite map stop` (removing it needs a restart).");
    }
    let changed: Vec<_> = config
        .maps
        .into_iter()
        .filter(|m| before.get(&m.name) != Some(&m.definition))
        .collect();
    if changed.is_empty() {
        return Some(entries);
    }
    match engine.apply_config_file(changed).await {
        Ok(report) => {
            for map in report.iter().filter(|m| m.change != Change::Unchanged) {
                tracing::info!(file = %shown, map = %map.map, change = ?map.change, from = ?map.from, to = ?map.to, "The config file's change was applied.");
            }
            return Some(entries);
        }
        Err(SwapError::Invalid(problems)) => {
            for problem in &problems {
                tracing::warn!(file = %shown, "{problem}");
            }
            tracing::warn!(file = %shown, problems = problems.len(), "The changed config file does not validate; nothing changed.");
        }
        Err(error) => {
            tracing::warn!(file = %shown, %error, "The config file's change was refused.");
        }
    }
    None
}
