//! Compiled-component cache on disk: compile once per artifact digest and engine.
//!
//! Files are `<cache>/<sha256>-<engine-hash>.cwasm`, where the engine hash is wasmtime's
//! precompile compatibility hash, so a host upgrade or config change never loads a stale
//! artifact: it compiles anew under a new name. A file that fails to load (truncated, corrupt)
//! is replaced. Only files this host wrote are ever loaded (the cache lives in the data dir).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Lower-case hex SHA-256 of `bytes` (the digest components are cached and checked under).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The cache of one engine.
pub struct ComponentCache {
    dir: PathBuf,
    engine_hash: String,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a precompiled file.
    Hit,
    /// Compiled now (and written to the cache).
    Compiled,
}

impl ComponentCache {
    /// A cache in `dir` for `engine`.
    pub fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(ComponentCache {
            dir: dir.to_path_buf(),
            engine_hash: format!("{:016x}", h.finish()),
        })
    }

    /// The file for `digest`.
    pub fn path_for(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", self.engine_hash))
    }

    /// Loads the component for `digest`, compiling `bytes` if the cache has no usable copy.
    pub fn load(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.path_for(digest);
        if let Ok(cached) = std::fs::read(&path) {
            // Read into memory rather than mmap (`deserialize_file`): a cache file truncated or
            // rewritten in place while mapped would crash the whole host with SIGBUS.
            // SAFETY: the file was written by this host (below) for this engine's compatibility
            // hash; wasmtime also checks the header and refuses incompatible artifacts.
            match unsafe { Component::deserialize(engine, &cached) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(
                    "cached component {} is unusable, recompiling: {e}",
                    path.display()
                ),
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        let tmp = self
            .dir
            .join(format!(".{digest}-{}.tmp", uuid::Uuid::new_v4()));
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &path)?;
        // SAFETY: just produced by `precompile_component` on this engine.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, CacheOutcome::Compiled))
    }
}
