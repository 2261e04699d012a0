//! Filesystem: WASI preopens of the declared and granted directories, nothing else.
//!
//! `permissions.filesystemRead: ["shared"]` makes `/shared` visible read-only and
//! `filesystemWrite: ["scratch"]` makes `/scratch` visible read-write, each backed by
//! `<data>/plugin-files/<plugin-id>/<name>` on the host. Only directories whose `fs:read:<name>` /
//! `fs:write:<name>` disclosure the operator granted are preopened.
//!
//! Enforcement is by construction: a path outside the preopens does not exist in the guest's
//! world (wasi-libc fails it before any host call), and `..` or symlinks escaping a preopen are
//! refused by the host's capability-based filesystem (cap-std). Writes to a read-only preopen
//! fail with `EPERM`/`EROFS`-style errors.
//!
//! [`link_open_guard`] wraps `descriptor.open-at` so that every path the host refuses (an escape
//! through `..` or a symlink, a write through a read-only preopen) also writes a
//! `permission_denied` receipt; the guest still gets the usual WASI error code. The path-based
//! changes (`create-directory-at`, `remove-directory-at`, `unlink-file-at`, `rename-at`,
//! `link-at`, `set-times-at`) are wrapped the same way, and `symlink-at` is refused outright with
//! a receipt: a plugin never needs a symlink, and one planted in its writable directory could
//! point anywhere on the host for whatever reads that directory later.

use super::Denial;
use crate::store::HostState;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// One directory made visible to the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct Preopen {
    /// Host directory.
    pub host: PathBuf,
    /// Path inside the guest (`/<name>`).
    pub guest: String,
    /// Whether the guest may write.
    pub writable: bool,
}

/// The directories one plugin sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilesystemPolicy {
    /// Granted preopens.
    pub preopens: Vec<Preopen>,
}

impl FilesystemPolicy {
    /// Builds the policy from the manifest's declared directories and the operator's grants.
    pub fn new(
        files_root: &Path,
        read: &[String],
        write: &[String],
        granted: &BTreeSet<String>,
    ) -> Self {
        let mut preopens = Vec::new();
        for name in write {
            if granted.contains(&format!("fs:write:{name}")) {
                preopens.push(Preopen {
                    host: files_root.join(name),
                    guest: format!("/{name}"),
                    writable: true,
                });
            }
        }
        for name in read {
            let already = preopens.iter().any(|p| p.guest == format!("/{name}"));
            if !already && granted.contains(&format!("fs:read:{name}")) {
                preopens.push(Preopen {
                    host: files_root.join(name),
                    guest: format!("/{name}"),
                    writable: false,
                });
            }
        }
        FilesystemPolicy { preopens }
    }

    /// Creates the host directories (at load time, not per call).
    pub fn prepare(&self) -> std::io::Result<()> {
        for p in &self.preopens {
            std::fs::create_dir_all(&p.host)?;
        }
        Ok(())
    }

    /// Adds the preopens to a WASI context.
    pub fn apply(&self, builder: &mut WasiCtxBuilder) -> wasmtime::Result<()> {
        for p in &self.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder.preopened_dir(&p.host, &p.guest, perms)?;
        }
        Ok(())
    }
}

/// The WASI filesystem interface whose `open-at` is guarded (the version wasmtime-wasi links;
/// guests importing any 0.2.x resolve to it).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Replaces `descriptor.open-at` with a wrapper that delegates to wasmtime-wasi and writes a
/// denial receipt when the host refuses the path. Call after linking WASI.
pub fn link_open_guard(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi::filesystem::WasiFilesystemView;
    use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
    use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
        Descriptor, DescriptorFlags, HostDescriptor, OpenFlags, PathFlags,
    };
    type Args = (
        Resource<Descriptor>,
        PathFlags,
        String,
        OpenFlags,
        DescriptorFlags,
    );
    linker.allow_shadowing(true);
    linker.instance(FILESYSTEM_TYPES)?.func_wrap(
        "[method]descriptor.open-at",
        |mut store: wasmtime::StoreContextMut<'_, HostState>, (fd, path_flags, path, open_flags, flags): Args| {
            let state = store.data_mut();
            let wants_write = flags.contains(DescriptorFlags::WRITE)
                || open_flags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE);
            let result = HostDescriptor::open_at(&mut state.filesystem(), fd, path_flags, path.clone(), open_flags, flags);
            match result {
                Ok(descriptor) => Ok((Ok(descriptor),)),
                Err(e) => {
                    let code = e.downcast()?;
                    if matches!(code, ErrorCode::NotPermitted | ErrorCode::Access | ErrorCode::ReadOnly) {
                        let (required_grant, reason) = if wants_write {
                            ("a directory in permissions.filesystemWrite, granted by the operator", "write refused")
                        } else {
                            ("a path inside a declared, granted directory (no .. or symlink escapes)", "path refused")
                        };
                        state.caps.ctx.deny(&Denial {
                            capability: "filesystem",
                            target: path,
                            required_grant: required_grant.into(),
                            reason: format!("{reason} by the host ({code:?})"),
                        });
                    }
                    Ok((Err(code),))
                }
            }
        },
    )?;
    linker.allow_shadowing(false);
    link_change_guards(linker)
}

/// The receipt of a path-based change the host refused (only refusals, not "no such file").
fn deny_change(
    state: &mut HostState,
    op: &str,
    path: &str,
    code: &wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode,
) {
    use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
    if matches!(
        code,
        ErrorCode::NotPermitted | ErrorCode::Access | ErrorCode::ReadOnly
    ) {
        state.caps.ctx.deny(&Denial {
            capability: "filesystem",
            target: crate::capabilities::log::sanitize(path, 512),
            required_grant:
                "a directory in permissions.filesystemWrite, granted by the operator (no .. or symlink escapes)"
                    .into(),
            reason: format!("{op} refused by the host ({code:?})"),
        });
    }
}

/// Wraps the path-based changes of `wasi:filesystem` (receipts on refusal) and refuses
/// `symlink-at`.
fn link_change_guards(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::StoreContextMut as Ctx;
    use wasmtime::component::Resource;
    use wasmtime_wasi::filesystem::WasiFilesystemView;
    use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
    use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
        Descriptor, HostDescriptor, NewTimestamp, PathFlags,
    };
    type Fd = Resource<Descriptor>;
    type Out = wasmtime::Result<(Result<(), ErrorCode>,)>;
    /// The WASI result of a wrapped call, with a receipt when the host refused it.
    fn settle(
        state: &mut HostState,
        op: &str,
        path: &str,
        r: wasmtime_wasi::p2::FsResult<()>,
    ) -> Out {
        match r {
            Ok(()) => Ok((Ok(()),)),
            Err(e) => {
                let code: ErrorCode = e.downcast()?;
                deny_change(state, op, path, &code);
                Ok((Err(code),))
            }
        }
    }
    linker.allow_shadowing(true);
    let mut fs = linker.instance(FILESYSTEM_TYPES)?;
    fs.func_wrap(
        "[method]descriptor.create-directory-at",
        |mut s: Ctx<'_, HostState>, (fd, path): (Fd, String)| -> Out {
            let st = s.data_mut();
            let r = HostDescriptor::create_directory_at(&mut st.filesystem(), fd, path.clone());
            settle(st, "create-directory", &path, r)
        },
    )?;
    fs.func_wrap(
        "[method]descriptor.remove-directory-at",
        |mut s: Ctx<'_, HostState>, (fd, path): (Fd, String)| -> Out {
            let st = s.data_mut();
            let r = HostDescriptor::remove_directory_at(&mut st.filesystem(), fd, path.clone());
            settle(st, "remove-directory", &path, r)
        },
    )?;
    fs.func_wrap(
        "[method]descriptor.unlink-file-at",
        |mut s: Ctx<'_, HostState>, (fd, path): (Fd, String)| -> Out {
            let st = s.data_mut();
            let r = HostDescriptor::unlink_file_at(&mut st.filesystem(), fd, path.clone());
            settle(st, "unlink", &path, r)
        },
    )?;
    fs.func_wrap(
        "[method]descriptor.rename-at",
        |mut s: Ctx<'_, HostState>, (fd, old, new_fd, new): (Fd, String, Fd, String)| -> Out {
            let st = s.data_mut();
            let r = HostDescriptor::rename_at(&mut st.filesystem(), fd, old.clone(), new_fd, new);
            settle(st, "rename", &old, r)
        },
    )?;
    fs.func_wrap(
        "[method]descriptor.link-at",
        |mut s: Ctx<'_, HostState>,
         (fd, flags, old, new_fd, new): (Fd, PathFlags, String, Fd, String)|
         -> Out {
            let st = s.data_mut();
            let r =
                HostDescriptor::link_at(&mut st.filesystem(), fd, flags, old.clone(), new_fd, new);
            settle(st, "link", &old, r)
        },
    )?;
    fs.func_wrap(
        "[method]descriptor.set-times-at",
        |mut s: Ctx<'_, HostState>,
         (fd, flags, path, atime, mtime): (Fd, PathFlags, String, NewTimestamp, NewTimestamp)|
         -> Out {
            let st = s.data_mut();
            let r = HostDescriptor::set_times_at(
                &mut st.filesystem(),
                fd,
                flags,
                path.clone(),
                atime,
                mtime,
            );
            settle(st, "set-times", &path, r)
        },
    )?;
    fs.func_wrap(
        "[method]descriptor.symlink-at",
        |mut s: Ctx<'_, HostState>, (_fd, target, path): (Fd, String, String)| -> Out {
            let st = s.data_mut();
            st.caps.ctx.deny(&Denial {
                capability: "filesystem",
                target: format!(
                    "{} -> {}",
                    crate::capabilities::log::sanitize(&path, 256),
                    crate::capabilities::log::sanitize(&target, 256)
                ),
                required_grant: "none: plugins cannot create symbolic links".into(),
                reason: "symlink refused by the host".into(),
            });
            Ok((Err(ErrorCode::NotPermitted),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_directories_are_preopened() {
        let root = Path::new("/data/plugin-files/p");
        let granted: BTreeSet<String> = ["fs:read:shared".to_string()].into();
        let p = FilesystemPolicy::new(
            root,
            &["shared".into(), "other".into()],
            &["scratch".into()],
            &granted,
        );
        assert_eq!(
            p.preopens,
            vec![Preopen {
                host: root.join("shared"),
                guest: "/shared".into(),
                writable: false
            }]
        );
        let all: BTreeSet<String> = ["fs:read:shared", "fs:write:scratch"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = FilesystemPolicy::new(root, &["shared".into()], &["scratch".into()], &all);
        assert_eq!(p.preopens.len(), 2);
        assert!(p.preopens[0].writable && p.preopens[0].guest == "/scratch");
    }
}
