//! Plugin packages in their three accepted forms, read into one [`PluginPackage`]:
//!
//! - a directory with `nitejar.plugin.json` at its root (local path, git checkout);
//! - a `.tgz` in npm layout (files under `package/`), so `npm pack`/`npm publish` work;
//! - a bare `.wasm` component carrying its manifest in a custom section named
//!   [`MANIFEST_SECTION`] (see [`embed_manifest`]).
//!
//! Archives are extracted defensively: no absolute paths, no `..`, no links or devices, at most
//! [`MAX_PACKAGE_ENTRIES`] entries and [`MAX_PACKAGE_UNPACKED_BYTES`] in total. Nothing in a
//! package is ever executed on the host (there are no install scripts).

use crate::limits::{
    MAX_ARCHIVE_HEADER_BYTES, MAX_PACKAGE_ENTRIES, MAX_PACKAGE_PATH_BYTES,
    MAX_PACKAGE_STREAM_BYTES, MAX_PACKAGE_UNPACKED_BYTES,
};
use nitejar_sandbox::manifest::{MANIFEST_FILE, Manifest, ManifestError, safe_relative_path};
use std::io::{Read, Write};
use std::path::Path;

/// The custom section a bare `.wasm` package carries its manifest in.
pub const MANIFEST_SECTION: &str = "nitejar.plugin.json";

/// Why a package could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The manifest is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The package is malformed or unsafe; the message says how.
    #[error("invalid package: {0}")]
    Invalid(String),
    /// Reading failed.
    #[error("reading the package failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A package read into memory: manifest plus component bytes.
#[derive(Debug, Clone)]
pub struct PluginPackage {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The manifest as found (stored verbatim in the version directory).
    pub manifest_json: Vec<u8>,
    /// The component bytes.
    pub wasm: Vec<u8>,
    /// sha256 of `wasm`, hex (the plugin's checksum).
    pub digest: String,
    /// Files under the package's `skills/` directory (relative paths), which plugin skills
    /// may reference as their source. Kept with the installed version.
    pub files: Vec<(String, Vec<u8>)>,
    /// The package's signature file ([`super::trust::SIGNATURE_FILE`]), when it has one.
    pub signature: Option<super::trust::PackageSignature>,
}

/// The package directory whose files are kept with an installed version.
pub const PACKAGE_FILES_DIR: &str = "skills";

/// Reads every regular file under `dir/skills` (no links, bounded in count and size).
fn package_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
    let root = dir.join(PACKAGE_FILES_DIR);
    let mut out = Vec::new();
    if !root.is_dir() {
        return Ok(out);
    }
    let mut total: u64 = 0;
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = std::fs::symlink_metadata(entry.path())?;
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            if !meta.is_file() {
                return invalid(format!(
                    "{} is a link or special file; packages may only contain regular files",
                    entry.path().display()
                ));
            }
            total += meta.len();
            if out.len() >= MAX_PACKAGE_ENTRIES || total > crate::limits::MAX_PACKAGE_FILES_BYTES {
                return invalid(format!(
                    "the package's {PACKAGE_FILES_DIR}/ directory is larger than {} bytes or {MAX_PACKAGE_ENTRIES} files",
                    crate::limits::MAX_PACKAGE_FILES_BYTES
                ));
            }
            let rel = entry
                .path()
                .strip_prefix(dir)
                .map_err(|_| PackageError::Invalid("bad package path".into()))?
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read(entry.path())?));
        }
    }
    out.sort();
    Ok(out)
}

/// Hex sha256.
pub use nitejar_sandbox::cache::sha256_hex;

fn invalid<T>(msg: impl Into<String>) -> Result<T, PackageError> {
    Err(PackageError::Invalid(msg.into()))
}

impl PluginPackage {
    /// Builds a package from manifest bytes and component bytes.
    pub fn from_parts(
        manifest_json: Vec<u8>,
        wasm: Vec<u8>,
    ) -> Result<PluginPackage, PackageError> {
        let manifest = Manifest::parse(&manifest_json)?;
        if !wasm.starts_with(b"\0asm") {
            return invalid(format!("{} is not a WebAssembly file", manifest.entry));
        }
        let digest = sha256_hex(&wasm);
        Ok(PluginPackage {
            manifest,
            manifest_json,
            wasm,
            digest,
            files: Vec::new(),
            signature: None,
        })
    }

    /// Reads a package directory.
    pub fn from_dir(dir: &Path) -> Result<PluginPackage, PackageError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest_json = std::fs::read(&manifest_path).map_err(|e| {
            PackageError::Invalid(format!("no {MANIFEST_FILE} at {}: {e}", dir.display()))
        })?;
        let manifest = Manifest::parse(&manifest_json)?;
        let entry = dir.join(manifest.entry.trim_start_matches("./"));
        let meta = std::fs::symlink_metadata(&entry).map_err(|_| {
            PackageError::Invalid(format!(
                "entry {} does not exist in the package",
                manifest.entry
            ))
        })?;
        if !meta.is_file() {
            return invalid(format!(
                "entry {} must be a regular file (not a link)",
                manifest.entry
            ));
        }
        if meta.len() > MAX_PACKAGE_UNPACKED_BYTES {
            return invalid(format!(
                "entry {} is larger than {MAX_PACKAGE_UNPACKED_BYTES} bytes",
                manifest.entry
            ));
        }
        let mut pkg = Self::from_parts(manifest_json, std::fs::read(entry)?)?;
        pkg.files = package_files(dir)?;
        pkg.signature = read_signature(dir)?;
        Ok(pkg)
    }

    /// Reads a bare component whose manifest is in the [`MANIFEST_SECTION`] custom section.
    pub fn from_wasm(wasm: Vec<u8>) -> Result<PluginPackage, PackageError> {
        let Some(manifest_json) = find_manifest_section(&wasm)? else {
            return invalid(format!(
                "the .wasm has no {MANIFEST_SECTION:?} custom section; upload a .tgz or embed the manifest with `nitejar plugin pack`"
            ));
        };
        Self::from_parts(manifest_json, wasm)
    }

    /// Extracts a `.tgz` (npm layout) into `staging` (which must be empty) and reads it.
    ///
    /// Every size is bounded before it is read: the decompressed stream as a whole
    /// ([`MAX_PACKAGE_STREAM_BYTES`]), each extended header (GNU long names, PAX records:
    /// [`MAX_ARCHIVE_HEADER_BYTES`]), each path ([`MAX_PACKAGE_PATH_BYTES`]), the entries and
    /// the unpacked total. Error messages show at most a short, escaped prefix of a name.
    pub fn from_tgz(bytes: &[u8], staging: &Path) -> Result<PluginPackage, PackageError> {
        std::fs::create_dir_all(staging)?;
        let stream = Bounded {
            inner: flate2::read::GzDecoder::new(bytes),
            left: MAX_PACKAGE_STREAM_BYTES,
        };
        let mut archive = tar::Archive::new(stream);
        let mut total: u64 = 0;
        let mut files = 0usize;
        // A long name from a GNU `L` entry or a PAX `path` record, for the next entry.
        let mut long_name: Option<String> = None;
        // Raw entries: the extended headers come to us, and we bound them before reading.
        for (count, entry) in archive.entries().map_err(malformed)?.raw(true).enumerate() {
            if count >= 3 * MAX_PACKAGE_ENTRIES {
                return invalid(format!(
                    "the archive has more than {MAX_PACKAGE_ENTRIES} entries"
                ));
            }
            let mut entry = entry.map_err(malformed)?;
            let kind = entry.header().entry_type();
            let size = entry.size();
            if matches!(
                kind,
                tar::EntryType::GNULongName
                    | tar::EntryType::GNULongLink
                    | tar::EntryType::XHeader
                    | tar::EntryType::XGlobalHeader
            ) {
                if size > MAX_ARCHIVE_HEADER_BYTES {
                    return invalid(format!(
                        "the archive has an extended header of {size} bytes (at most {MAX_ARCHIVE_HEADER_BYTES})"
                    ));
                }
                let mut data = Vec::with_capacity(size as usize);
                entry
                    .by_ref()
                    .take(size)
                    .read_to_end(&mut data)
                    .map_err(malformed)?;
                match kind {
                    tar::EntryType::GNULongName => {
                        let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                        long_name = Some(entry_name(&data[..end])?);
                    }
                    tar::EntryType::XHeader => {
                        for ext in tar::PaxExtensions::new(&data) {
                            let ext = ext.map_err(|_| {
                                PackageError::Invalid(
                                    "the archive has a malformed PAX header".into(),
                                )
                            })?;
                            if ext.key_bytes() == b"path" {
                                long_name = Some(entry_name(ext.value_bytes())?);
                            }
                        }
                    }
                    // Link targets do not matter (links are refused); global records are ignored.
                    _ => {}
                }
                continue;
            }
            let path = match long_name.take() {
                Some(name) => name,
                None => entry_name(&entry.path_bytes())?,
            };
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                return invalid(format!(
                    "{} is a link or special file; packages may only contain regular files",
                    shown(&path)
                ));
            }
            files += 1;
            if files > MAX_PACKAGE_ENTRIES {
                return invalid(format!(
                    "the archive has more than {MAX_PACKAGE_ENTRIES} entries"
                ));
            }
            // npm packs everything under `package/`; accept a bare layout too.
            let rel = path.strip_prefix("package/").unwrap_or(&path);
            if !safe_relative_path(rel) {
                return invalid(format!("{} escapes the package directory", shown(&path)));
            }
            total += size;
            if total > MAX_PACKAGE_UNPACKED_BYTES {
                return invalid(format!(
                    "the archive unpacks to more than {MAX_PACKAGE_UNPACKED_BYTES} bytes"
                ));
            }
            let dest = staging.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut out = std::fs::File::create(&dest)?;
            // Never trust the header size alone: copy at most the declared size. A read error
            // is the archive's fault (422), a write error the host's.
            let mut from = entry.by_ref().take(size);
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = from.read(&mut buf).map_err(malformed)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
        }
        Self::from_dir(staging)
    }
}

/// A name from an archive: UTF-8 and at most [`MAX_PACKAGE_PATH_BYTES`].
fn entry_name(bytes: &[u8]) -> Result<String, PackageError> {
    if bytes.len() > MAX_PACKAGE_PATH_BYTES {
        return invalid(format!(
            "the archive has a path of {} bytes (at most {MAX_PACKAGE_PATH_BYTES})",
            bytes.len()
        ));
    }
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| PackageError::Invalid("the archive has a path that is not UTF-8".into()))
}

/// An archive the reader cannot read: the reader's message may quote header fields, so it is
/// escaped and cut like a name.
fn malformed(e: std::io::Error) -> PackageError {
    PackageError::Invalid(format!(
        "the archive cannot be read: {}",
        nitejar_sandbox::capabilities::log::sanitize(&e.to_string(), 240)
    ))
}

/// A name as an error message shows it: escaped and short.
fn shown(name: &str) -> String {
    format!(
        "{:?}",
        nitejar_sandbox::capabilities::log::sanitize(name, 120)
    )
}

/// A reader that fails once it has given `left` bytes: the decompressed archive stream is
/// bounded as a whole, whatever its headers claim.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other(format!(
                "the archive decompresses to more than {MAX_PACKAGE_STREAM_BYTES} bytes"
            )));
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads the package's signature file, if present.
fn read_signature(dir: &Path) -> Result<Option<super::trust::PackageSignature>, PackageError> {
    let path = dir.join(super::trust::SIGNATURE_FILE);
    match std::fs::symlink_metadata(&path) {
        Err(_) => return Ok(None),
        Ok(m) if !m.is_file() || m.len() > 64 << 10 => {
            return invalid(format!(
                "{} must be a small regular file",
                super::trust::SIGNATURE_FILE
            ));
        }
        Ok(_) => {}
    }
    let text = std::fs::read(&path)?;
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        PackageError::Invalid(format!(
            "{} is not a valid signature file: {e}",
            super::trust::SIGNATURE_FILE
        ))
    })
}

/// Finds the manifest custom section in a component.
fn find_manifest_section(wasm: &[u8]) -> Result<Option<Vec<u8>>, PackageError> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload =
            payload.map_err(|e| PackageError::Invalid(format!("not a valid component: {e}")))?;
        if let wasmparser::Payload::CustomSection(reader) = payload
            && reader.name() == MANIFEST_SECTION
        {
            return Ok(Some(reader.data().to_vec()));
        }
    }
    Ok(None)
}

/// Appends `manifest_json` to a component as the [`MANIFEST_SECTION`] custom section, making it
/// a self-contained bare `.wasm` package.
pub fn embed_manifest(wasm: &[u8], manifest_json: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(MANIFEST_SECTION.len(), &mut body);
    body.extend_from_slice(MANIFEST_SECTION.as_bytes());
    body.extend_from_slice(manifest_json);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Vec<u8> {
        serde_json::json!({
            "schemaVersion": 1, "id": "t.pkg", "name": "T", "version": "1.0.0",
            "entry": "dist/plugin.wasm", "engine": {"nitejar": ">=0.1.0"}
        })
        .to_string()
        .into_bytes()
    }

    /// The smallest valid component: magic + component version/layer.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn tgz(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if kind.is_symlink() {
                h.set_link_name("/etc/passwd").unwrap();
            }
            // Write the raw name so hostile paths are not normalised away by the builder.
            let name = h.as_gnu_mut().unwrap();
            name.name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn reads_an_npm_style_tgz() {
        let m = manifest();
        let bytes = tgz(&[
            ("package/nitejar.plugin.json", &m, tar::EntryType::Regular),
            (
                "package/dist/plugin.wasm",
                EMPTY_COMPONENT,
                tar::EntryType::Regular,
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let pkg = PluginPackage::from_tgz(&bytes, dir.path()).unwrap();
        assert_eq!(pkg.manifest.id, "t.pkg");
        assert_eq!(pkg.digest, sha256_hex(EMPTY_COMPONENT));
    }

    #[test]
    fn refuses_traversal_links_and_bombs() {
        let m = manifest();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tgz(&[("package/../../evil", b"x", tar::EntryType::Regular)]),
                "escapes",
            ),
            (
                tgz(&[("/etc/cron.d/x", b"x", tar::EntryType::Regular)]),
                "escapes",
            ),
            (
                tgz(&[("package/link", b"", tar::EntryType::Symlink)]),
                "link or special",
            ),
            (
                tgz(&[("package/nitejar.plugin.json", &m, tar::EntryType::Regular)]),
                "does not exist",
            ),
        ];
        for (bytes, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let e = PluginPackage::from_tgz(&bytes, dir.path())
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{e} should mention {expected}");
            // Nothing was written outside the staging directory.
            assert!(!dir.path().parent().unwrap().join("evil").exists());
        }
        let big = vec![0u8; (MAX_PACKAGE_UNPACKED_BYTES + 1) as usize];
        let dir = tempfile::tempdir().unwrap();
        let e = PluginPackage::from_tgz(
            &tgz(&[("package/big", &big, tar::EntryType::Regular)]),
            dir.path(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unpacks to more than"), "{e}");
    }

    /// One PAX record: `<len> key=value\n`, where `<len>` counts itself.
    fn pax(key: &str, value: &[u8]) -> Vec<u8> {
        let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        let mut out = format!("{len} {key}=").into_bytes();
        out.extend_from_slice(value);
        out.push(b'\n');
        out
    }

    #[test]
    fn long_names_from_gnu_and_pax_headers_are_honoured() {
        let m = manifest();
        let bytes = tgz(&[
            (
                "PaxHeader/m",
                &pax("path", b"package/nitejar.plugin.json"),
                tar::EntryType::XHeader,
            ),
            ("garbage-name-1", &m, tar::EntryType::Regular),
            (
                "././@LongLink",
                b"package/dist/plugin.wasm\0",
                tar::EntryType::GNULongName,
            ),
            ("garbage-name-2", EMPTY_COMPONENT, tar::EntryType::Regular),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let pkg = PluginPackage::from_tgz(&bytes, dir.path()).unwrap();
        assert_eq!(pkg.manifest.id, "t.pkg");
        assert!(!dir.path().join("garbage-name-1").exists());
    }

    #[test]
    fn extended_headers_and_names_are_bounded_before_they_are_read() {
        // 1 MiB of one byte compresses to about 1 KiB; unbounded readers take it whole.
        let huge = vec![b'a'; 1 << 20];
        let long_path = format!("package/{}", "d".repeat(5000));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tgz(&[
                    ("././@LongLink", &huge, tar::EntryType::GNULongName),
                    ("x", b"", tar::EntryType::Regular),
                ]),
                "extended header of 1048576 bytes",
            ),
            (
                tgz(&[
                    ("PaxHeader/x", &huge, tar::EntryType::XHeader),
                    ("x", b"", tar::EntryType::Regular),
                ]),
                "extended header of 1048576 bytes",
            ),
            (
                tgz(&[
                    (
                        "PaxHeader/x",
                        &pax("path", long_path.as_bytes()),
                        tar::EntryType::XHeader,
                    ),
                    ("x", b"", tar::EntryType::Regular),
                ]),
                "path of 5008 bytes",
            ),
            (
                tgz(&[
                    ("PaxHeader/x", b"99999 path=x\n", tar::EntryType::XHeader),
                    ("x", b"", tar::EntryType::Regular),
                ]),
                "malformed PAX header",
            ),
        ];
        for (bytes, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let e = PluginPackage::from_tgz(&bytes, dir.path())
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{e} should mention {expected}");
            assert!(e.len() < 300, "the error stays short: {} bytes", e.len());
        }
        // A refused name is shown short and escaped, never echoed whole.
        let evil = format!("package/../{}\u{1b}[2J", "e".repeat(900));
        let bytes = tgz(&[
            (
                "././@LongLink",
                evil.as_bytes(),
                tar::EntryType::GNULongName,
            ),
            ("x", b"x", tar::EntryType::Regular),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let e = PluginPackage::from_tgz(&bytes, dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("escapes the package directory"), "{e}");
        assert!(e.len() < 300 && !e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn bare_wasm_carries_its_manifest() {
        let m = manifest();
        let wasm = embed_manifest(EMPTY_COMPONENT, &m);
        let pkg = PluginPackage::from_wasm(wasm).unwrap();
        assert_eq!(pkg.manifest.version, "1.0.0");
        let e = PluginPackage::from_wasm(EMPTY_COMPONENT.to_vec()).unwrap_err();
        assert!(e.to_string().contains("custom section"), "{e}");
    }
}
