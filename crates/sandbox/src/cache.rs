//! Compiled-component cache on disk: compile once per artifact digest and engine.
//!
//! Files are `<cache>/<sha256>-<engine-hash>.cwasm`, where the engine hash is wasmtime's
//! precompile compatibility hash, so a host upgrade or config change never loads a stale
//! artifact: it compiles anew under a new name. A file that fails to load (truncated, corrupt)
//! is replaced. Only files this host wrote are ever loaded (the cache lives in the data dir).
//!
//! A component is mapped from its file (wasmtime `deserialize_file`), not read into memory: a
//! copy in memory is anonymous memory, which the kernel can never reclaim without swap, of the
//! whole compiled image of every plugin, used or not (0.37 MiB for the example hooks plugin).
//! Mapped, the image is clean page cache the kernel can drop under memory pressure and read
//! again when a call touches it, and boot is faster (no copy). The pages a plugin's calls
//! touched are handed back (`MADV_PAGEOUT`, only advice) once its load-time calls are done and
//! whenever it has been idle a while (see [`crate::instance`]).
//! What stays anonymous is wasmtime's own metadata, about 0.1 MiB per component.
//!
//! The condition of mapping: a cache file is never written in place while the host runs. This
//! host writes each file once, under a temporary name, and renames it into place (a
//! replacement is a new file; the old one stays intact for the mappings that use it); something
//! else truncating a file in place would make the host fault (SIGBUS) the next time it touches
//! the lost pages. Delete cache files instead (they are compiled again at the next load).

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
        if path.is_file() {
            // SAFETY: the file was written by this host (below) for this engine's compatibility
            // hash, and is never written in place (see the module docs); wasmtime also checks
            // the header and refuses incompatible artifacts.
            match unsafe { Component::deserialize_file(engine, &path) } {
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
        // Written out before it is used: its pages are clean when mapped (pages still being
        // written back cannot be handed back to the kernel, see `release_image`), and a crash
        // never leaves a renamed file whose contents did not reach the disk.
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, &compiled)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        drop(compiled);
        // SAFETY: just produced by `precompile_component` on this engine and renamed into place.
        let component = unsafe { Component::deserialize_file(engine, &path)? };
        Ok((component, CacheOutcome::Compiled))
    }
}

/// Hands the pages of a loaded component's image back to the kernel (see the module docs):
/// clean file pages only mapped here are dropped and read again when touched; pages wasmtime
/// wrote, and pages the kernel keeps for other reasons, stay. Only advice: nothing is lost, a
/// failure changes nothing but the memory kept. Safe while other threads run the code (a page
/// they touch is faulted back in).
///
/// `file` is the cache file the image is mapped from. Pages faulted in lately sit in the
/// kernel's per-CPU batches until enough follow, and `MADV_PAGEOUT` skips pages not on its
/// lists yet: telling the kernel first that the file's cached pages are not needed
/// (`POSIX_FADV_DONTNEED`, which drops the ones nobody maps) drains those batches on every CPU
/// when some of its pages are mapped, as the image's are.
pub(crate) fn release_image(component: &Component, file: &Path) {
    #[cfg(target_os = "linux")]
    {
        if let Ok(f) = std::fs::File::open(file) {
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        }
        let range = component.image_range();
        let page = rustix::param::page_size();
        let start = (range.start as usize) & !(page - 1);
        let len = (range.end as usize).saturating_sub(start);
        if len > 0 {
            // SAFETY: the range lies inside the component's own mapping, which it keeps alive;
            // MADV_PAGEOUT only reclaims pages (their contents stay readable).
            let _ = unsafe {
                rustix::mm::madvise(
                    start as *mut std::ffi::c_void,
                    len,
                    rustix::mm::Advice::LinuxPageOut,
                )
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (component, file);
}
