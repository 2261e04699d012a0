//! Process-wide settings of the SQLite library, made once before the first connection opens:
//! SQLite allocates through mimalloc (the host's allocator) and keeps no memory statistics.
//!
//! Why: profiled under load (2026-12-04), the database write thread spent about a tenth of its
//! time in glibc's `malloc` and `free` and in the mutex SQLite takes around every allocation to
//! count it (`SQLITE_DEFAULT_MEMSTATUS`, on in the bundled build). Nothing here reads SQLite's
//! memory statistics or sets a heap limit, so the count is pure cost.
//!
//! SQLite accepts these settings only before it is initialised (its first connection, from
//! sqlx or rusqlite); a call after that is refused and changes nothing, so whatever opened a
//! connection first (a test, a tool) leaves the library on its defaults, which work the same.

use libmimalloc_sys::{mi_free, mi_malloc, mi_realloc};
use rusqlite::ffi;
use std::os::raw::{c_int, c_void};
use std::sync::OnceLock;

// The one call of mimalloc's C API `libmimalloc-sys` declares only with its `extended` feature
// (whose extra dependency is not worth one declaration).
unsafe extern "C" {
    fn mi_usable_size(p: *const c_void) -> usize;
}

/// Applies the settings once per process (see the module docs); later calls do nothing. Called
/// wherever this crate opens SQLite (a store, a Nitejar database to import from). Whether SQLite
/// took them: false when it was initialised before the first call.
pub(crate) fn configure() -> bool {
    static TAKEN: OnceLock<bool> = OnceLock::new();
    *TAKEN.get_or_init(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(sqlite_malloc),
            xFree: Some(sqlite_free),
            xRealloc: Some(sqlite_realloc),
            xSize: Some(sqlite_size),
            xRoundup: Some(sqlite_roundup),
            xInit: Some(sqlite_init),
            xShutdown: Some(sqlite_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: both options are documented for `sqlite3_config` before initialisation (SQLite
        // returns SQLITE_MISUSE after it, changing nothing), with the argument types given:
        // an int for MEMSTATUS, a pointer to a methods struct for MALLOC (SQLite copies it).
        // The methods are valid for the process's life and meet SQLite's contract: 8-byte
        // aligned blocks (mimalloc aligns to 16), `xSize` of a block SQLite allocated, and
        // negative or zero sizes answered without allocating.
        let taken = unsafe {
            let memstatus = ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int);
            let malloc = ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &methods as *const ffi::sqlite3_mem_methods,
            );
            memstatus == ffi::SQLITE_OK && malloc == ffi::SQLITE_OK
        };
        if !taken {
            tracing::debug!("SQLite was initialised first: it keeps its default allocator");
        }
        taken
    })
}

unsafe extern "C" fn sqlite_malloc(n: c_int) -> *mut c_void {
    match usize::try_from(n) {
        // SAFETY: mimalloc's malloc takes any size.
        Ok(n) if n > 0 => unsafe { mi_malloc(n) },
        _ => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn sqlite_free(p: *mut c_void) {
    // SAFETY: SQLite frees only blocks it had from `sqlite_malloc`/`sqlite_realloc` (or null).
    unsafe { mi_free(p) }
}

unsafe extern "C" fn sqlite_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    match usize::try_from(n) {
        // SAFETY: `p` is a block from these methods (SQLite never reallocates null here).
        Ok(n) if n > 0 => unsafe { mi_realloc(p, n) },
        _ => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn sqlite_size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` is a live block from these methods.
    let n = unsafe { mi_usable_size(p) };
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn sqlite_roundup(n: c_int) -> c_int {
    // SQLite asks how much a request of `n` will really get; 8-byte multiples are what it
    // expects (its own allocator's rule), and within what mimalloc gives.
    n.saturating_add(7) & !7
}

unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's allocation round trip through these methods: sizes are kept, growth keeps
    /// the bytes, and the refusals SQLite relies on (zero and negative sizes) hold.
    #[test]
    fn the_methods_keep_sqlites_contract() {
        unsafe {
            assert!(sqlite_malloc(0).is_null());
            assert!(sqlite_malloc(-5).is_null());
            let p = sqlite_malloc(24);
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0);
            assert!(sqlite_size(p) >= 24);
            std::ptr::write_bytes(p.cast::<u8>(), 0xAB, 24);
            let q = sqlite_realloc(p, 4096);
            assert!(sqlite_size(q) >= 4096);
            assert_eq!(*q.cast::<u8>().add(23), 0xAB);
            sqlite_free(q);
            assert_eq!(sqlite_size(std::ptr::null_mut()), 0);
            assert_eq!(sqlite_roundup(1), 8);
            assert_eq!(sqlite_roundup(16), 16);
        }
    }

    /// A store opened in a fresh process takes the settings, and SQLite then allocates
    /// through them (its statement runs, and the library reports no memory counted).
    #[tokio::test]
    async fn a_store_opened_first_configures_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .unwrap();
        drop(store);
        // Tests of this crate share a process: every way they open SQLite configures it
        // first, so the first call's answer is the one returned here.
        assert!(configure());
        // With statistics off SQLite counts nothing.
        assert_eq!(unsafe { ffi::sqlite3_memory_used() }, 0);
    }
}
