//! The on-disk cache of compiled plugins.
//!
//! A compiled component is stored under the SHA-256 of the wasm bytes and
//! the engine's compatibility hash (which changes with the wasmtime version
//! and the engine's settings), so a new host or a new setting never loads a
//! stale artifact. Writes go to a temporary file first and are renamed into
//! place, so a crash never leaves half a file under a valid name.
//!
//! **Invariant**: the cache directory belongs to the host. Loading an
//! artifact is `unsafe` in wasmtime (it is machine code); only files this
//! cache wrote are ever loaded, and a file that fails to load is recompiled
//! and replaced.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept.
#[derive(Debug)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_hash: String,
}

impl CompileCache {
    /// A cache in `dir` (none: always compile) for components of `engine`.
    pub fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_hash: hex::encode(&hasher.0.finalize()[..16]),
        }
    }

    /// The component compiled from `wasm`: from the cache when it holds it,
    /// else compiled now (and stored). The flag says whether it was cached.
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<(Component, bool)> {
        let Some(path) = self.path(wasm) else {
            return Ok((Component::new(engine, wasm)?, false));
        };
        if path.exists() {
            // SAFETY: the file was written by `store` below from a component
            // this engine compiled, under a name that includes the engine's
            // compatibility hash; the cache directory belongs to the host.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "a cached plugin cannot be loaded; compiling it again");
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(error) = store(&path, &component) {
            tracing::warn!(path = %path.display(), %error, "cannot cache a compiled plugin");
        }
        Ok((component, false))
    }

    fn path(&self, wasm: &[u8]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let wasm_hash = hex::encode(Sha256::digest(wasm));
        Some(dir.join(format!("{wasm_hash}-{}.cwasm", self.engine_hash)))
    }
}

fn store(path: &Path, component: &Component) -> wasmtime::Result<()> {
    let bytes = component.serialize()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, &bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path)?;
    Ok(())
}

/// Feeds `Hash` output into SHA-256, for a hash that is stable across runs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
