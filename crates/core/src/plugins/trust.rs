//! Trust policy (spec §7, §18.3, §23): which packages may be installed and loaded in the
//! configured mode, and package signatures.
//!
//! - `self_host_open` (default): any package; a valid signature by a trusted key still marks it
//!   `trusted`.
//! - `self_host_guarded`: a third-party package must be signed by a trusted key (or a platform
//!   key) or allowlisted by id and component checksum; enabling it needs every declared
//!   permission granted first.
//! - `saas_locked`: only built-ins and packages signed by a platform key; upload, npm and git
//!   installs are refused outright; grants are required as in guarded mode.
//!
//! A signature is an Ed25519 signature over [`signing_message`]: the plugin id, version, the
//! component's sha256, the manifest's sha256 and every packaged file's sha256, so nothing the
//! host reads from a package can change without breaking it. It travels in the package as
//! [`SIGNATURE_FILE`] (`nitejar plugin sign` writes it) and is kept with the version, so boot
//! re-checks every installed plugin against the policy in force (a revoked key or a stricter
//! mode stops a plugin from loading, with a receipt).

use super::package::{PluginPackage, sha256_hex};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
pub use nitejar_store::TrustLevel;
use serde::{Deserialize, Serialize};

/// The signature file in a package directory or `.tgz`.
pub const SIGNATURE_FILE: &str = "nitejar.plugin.sig";

/// Domain separation for signed messages.
const SIGNING_CONTEXT: &str = "nitejar-plugin-signature-v1";

/// The configured trust mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustMode {
    /// Any package; grants are disclosures the operator acknowledges.
    SelfHostOpen,
    /// Signed or allowlisted packages only; all grants before enable.
    SelfHostGuarded,
    /// Built-ins and platform-signed packages only; no upload, npm or git installs.
    SaasLocked,
}

impl TrustMode {
    /// Parses the spec's names.
    pub fn parse(s: &str) -> Option<TrustMode> {
        match s.trim() {
            "self_host_open" => Some(TrustMode::SelfHostOpen),
            "self_host_guarded" => Some(TrustMode::SelfHostGuarded),
            "saas_locked" => Some(TrustMode::SaasLocked),
            _ => None,
        }
    }

    /// The spec's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustMode::SelfHostOpen => "self_host_open",
            TrustMode::SelfHostGuarded => "self_host_guarded",
            TrustMode::SaasLocked => "saas_locked",
        }
    }

    /// Whether every declared permission must be granted before a third-party plugin is enabled.
    pub fn grants_required(self) -> bool {
        self != TrustMode::SelfHostOpen
    }
}

/// A package signature as stored in [`SIGNATURE_FILE`] and with the installed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageSignature {
    /// The signer's Ed25519 public key, base64.
    pub public_key: String,
    /// The Ed25519 signature over [`signing_message`], base64.
    pub signature: String,
    /// sha256 of the manifest bytes that were signed (kept so boot can re-verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    /// sha256 over the packaged files that were signed (kept so boot can re-verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_sha256: Option<String>,
}

impl PackageSignature {
    /// The signature stored with an installed version, if its package had one.
    pub fn stored(row: &nitejar_store::VersionRow) -> Option<PackageSignature> {
        row.signature_json
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }
}

/// Why a package is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustVerdict {
    /// The plugin's trust level.
    pub level: TrustLevel,
    /// `builtin` | `platform_key` | `trusted_key` | `allowlist` | `open_mode`.
    pub basis: &'static str,
}

/// Parses a comma- or whitespace-separated list of base64 Ed25519 public keys.
pub fn parse_keys(text: &str) -> Result<Vec<VerifyingKey>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bytes = B64.decode(s).map_err(|_| format!("{s:?} is not base64"))?;
            let arr: [u8; 32] = bytes
                .try_into()
                .map_err(|_| format!("{s:?} is not a 32-byte Ed25519 public key"))?;
            VerifyingKey::from_bytes(&arr).map_err(|_| format!("{s:?} is not a valid Ed25519 key"))
        })
        .collect()
}

/// Parses a comma- or whitespace-separated allowlist of `<plugin-id>@<sha256-hex>`.
pub fn parse_allowlist(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (id, sum) = s
                .rsplit_once('@')
                .ok_or_else(|| format!("{s:?}: expected <plugin-id>@<sha256>"))?;
            if id.is_empty() || sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{s:?}: expected <plugin-id>@<64 hex digits>"));
            }
            Ok((id.to_string(), sum.to_ascii_lowercase()))
        })
        .collect()
}

/// The policy in force.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// The mode.
    pub mode: TrustMode,
    /// Keys whose signatures make a package trusted (guarded mode accepts them).
    pub trusted_keys: Vec<VerifyingKey>,
    /// The platform's keys (accepted in every mode, the only ones in `saas_locked`).
    pub platform_keys: Vec<VerifyingKey>,
    /// `(plugin id, component sha256)` pairs accepted in guarded mode without a signature.
    pub allowlist: Vec<(String, String)>,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        TrustPolicy {
            mode: TrustMode::SelfHostOpen,
            trusted_keys: Vec::new(),
            platform_keys: Vec::new(),
            allowlist: Vec::new(),
        }
    }
}

/// sha256 over a package's extra files (sorted by path): `path:sha256` lines.
pub fn files_digest(files: &[(String, Vec<u8>)]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|(p, d)| format!("{p}:{}\n", sha256_hex(d)))
        .collect();
    lines.sort();
    sha256_hex(lines.concat().as_bytes())
}

/// The bytes a package signature covers.
pub fn signing_message(
    id: &str,
    version: &str,
    component_sha256: &str,
    manifest_sha256: &str,
    files_sha256: &str,
) -> Vec<u8> {
    format!(
        "{SIGNING_CONTEXT}\nid:{id}\nversion:{version}\ncomponent:{component_sha256}\nmanifest:{manifest_sha256}\nfiles:{files_sha256}\n"
    )
    .into_bytes()
}

/// Signs a package with `key`, returning the signature file's content.
pub fn sign(pkg: &PluginPackage, key: &SigningKey) -> PackageSignature {
    let manifest_sha256 = sha256_hex(&pkg.manifest_json);
    let files_sha256 = files_digest(&pkg.files);
    let msg = signing_message(
        &pkg.manifest.id,
        &pkg.manifest.version,
        &pkg.digest,
        &manifest_sha256,
        &files_sha256,
    );
    PackageSignature {
        public_key: B64.encode(key.verifying_key().to_bytes()),
        signature: B64.encode(key.sign(&msg).to_bytes()),
        manifest_sha256: Some(manifest_sha256),
        files_sha256: Some(files_sha256),
    }
}

/// Reads a signing key file (base64 of the 32-byte Ed25519 seed).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| "the key file is not base64".to_string())?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "the key file must hold a 32-byte Ed25519 seed".to_string())?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A fresh signing key.
pub fn generate_key() -> SigningKey {
    use aes_gcm::aead::rand_core::RngCore;
    let mut seed = [0u8; 32];
    aes_gcm::aead::OsRng.fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// Base64 of a signing key's seed (the key file's content).
pub fn encode_signing_key(key: &SigningKey) -> String {
    B64.encode(key.to_bytes())
}

/// Base64 of a public key.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    B64.encode(key.to_bytes())
}

impl TrustPolicy {
    /// Whether packages from `source_kind` may be installed at all.
    pub fn check_source(&self, source_kind: &str) -> Result<(), String> {
        if self.mode == TrustMode::SaasLocked && matches!(source_kind, "upload" | "npm" | "git") {
            return Err(format!(
                "trust mode saas_locked refuses {source_kind} installs: only built-in and platform-signed plugins may run"
            ));
        }
        Ok(())
    }

    /// The key that signed the package, if the signature verifies for these contents.
    fn signer<'a>(
        keys: &'a [VerifyingKey],
        sig: &PackageSignature,
        message: &[u8],
    ) -> Option<&'a VerifyingKey> {
        let key_bytes: [u8; 32] = B64.decode(&sig.public_key).ok()?.try_into().ok()?;
        let sig_bytes: [u8; 64] = B64.decode(&sig.signature).ok()?.try_into().ok()?;
        let signature = Signature::from_bytes(&sig_bytes);
        keys.iter()
            .find(|k| k.to_bytes() == key_bytes)
            .filter(|k| k.verify(message, &signature).is_ok())
    }

    /// Decides whether a third-party plugin with this content may be installed or loaded.
    /// `manifest_sha256` and `files_sha256` come from the package at install time and from the
    /// stored signature at boot.
    pub fn check(
        &self,
        id: &str,
        version: &str,
        component_sha256: &str,
        signature: Option<&PackageSignature>,
        source_kind: &str,
    ) -> Result<TrustVerdict, String> {
        if source_kind == "builtin" {
            return Ok(TrustVerdict {
                level: TrustLevel::Builtin,
                basis: "builtin",
            });
        }
        self.check_source(source_kind)?;
        let signed_by = |keys: &[VerifyingKey]| {
            signature.and_then(|sig| {
                let msg = signing_message(
                    id,
                    version,
                    component_sha256,
                    sig.manifest_sha256.as_deref()?,
                    sig.files_sha256.as_deref()?,
                );
                Self::signer(keys, sig, &msg).copied()
            })
        };
        if signed_by(&self.platform_keys).is_some() {
            return Ok(TrustVerdict {
                level: TrustLevel::Trusted,
                basis: "platform_key",
            });
        }
        if self.mode == TrustMode::SaasLocked {
            return Err(format!(
                "trust mode saas_locked only runs built-in and platform-signed plugins; {id} {version} is not signed by a platform key"
            ));
        }
        if signed_by(&self.trusted_keys).is_some() {
            return Ok(TrustVerdict {
                level: TrustLevel::Trusted,
                basis: "trusted_key",
            });
        }
        if self
            .allowlist
            .iter()
            .any(|(a, sum)| a == id && sum == component_sha256)
        {
            return Ok(TrustVerdict {
                level: TrustLevel::Trusted,
                basis: "allowlist",
            });
        }
        match self.mode {
            TrustMode::SelfHostOpen => Ok(TrustVerdict {
                level: TrustLevel::Untrusted,
                basis: "open_mode",
            }),
            _ => Err(format!(
                "trust mode self_host_guarded needs {id} {version} signed by a trusted key (NITEJAR_PLUGIN_TRUSTED_KEYS) or allowlisted as {id}@{component_sha256} (NITEJAR_PLUGIN_ALLOWLIST){}",
                match signature {
                    Some(_) =>
                        "; its signature is not by a trusted key or does not match its contents",
                    None => "; it is not signed",
                }
            )),
        }
    }

    /// [`TrustPolicy::check`] for a package about to be installed, verifying the signature
    /// against the package's own manifest and files.
    pub fn check_package(
        &self,
        pkg: &PluginPackage,
        source_kind: &str,
    ) -> Result<TrustVerdict, String> {
        let sig = pkg.signature.as_ref().map(|s| PackageSignature {
            // Digests of what is actually in the package, not what the file claims.
            manifest_sha256: Some(sha256_hex(&pkg.manifest_json)),
            files_sha256: Some(files_digest(&pkg.files)),
            ..s.clone()
        });
        self.check(
            &pkg.manifest.id,
            &pkg.manifest.version,
            &pkg.digest,
            sig.as_ref(),
            source_kind,
        )
    }

    /// The signature to keep with an installed version (digests of the package's contents).
    pub fn stored_signature(pkg: &PluginPackage) -> Option<PackageSignature> {
        pkg.signature.as_ref().map(|s| PackageSignature {
            manifest_sha256: Some(sha256_hex(&pkg.manifest_json)),
            files_sha256: Some(files_digest(&pkg.files)),
            ..s.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg() -> PluginPackage {
        let manifest = br#"{"schemaVersion":1,"id":"acme.x","name":"X","version":"1.0.0","entry":"plugin.wasm","engine":{"nitejar":">=0.1.0"}}"#;
        let mut p = PluginPackage::from_parts(manifest.to_vec(), b"\0asm\x0d\x00\x01\x00".to_vec())
            .unwrap();
        p.files = vec![("skills/a/SKILL.md".into(), b"do things".to_vec())];
        p
    }

    fn policy(mode: TrustMode, trusted: &SigningKey, platform: &SigningKey) -> TrustPolicy {
        TrustPolicy {
            mode,
            trusted_keys: vec![trusted.verifying_key()],
            platform_keys: vec![platform.verifying_key()],
            allowlist: vec![],
        }
    }

    #[test]
    fn modes_accept_what_they_should() {
        let (trusted, platform, other) = (generate_key(), generate_key(), generate_key());
        let mut p = pkg();
        let open = policy(TrustMode::SelfHostOpen, &trusted, &platform);
        let guarded = policy(TrustMode::SelfHostGuarded, &trusted, &platform);
        let locked = policy(TrustMode::SaasLocked, &trusted, &platform);

        assert_eq!(open.check_package(&p, "upload").unwrap().basis, "open_mode");
        assert!(guarded.check_package(&p, "local").is_err());
        assert!(locked.check_package(&p, "local").is_err());
        assert!(
            locked
                .check_package(&p, "upload")
                .unwrap_err()
                .contains("refuses upload")
        );

        p.signature = Some(sign(&p, &trusted));
        assert_eq!(
            open.check_package(&p, "upload").unwrap().level,
            TrustLevel::Trusted
        );
        assert_eq!(
            guarded.check_package(&p, "npm").unwrap().basis,
            "trusted_key"
        );
        assert!(locked.check_package(&p, "local").is_err());

        p.signature = Some(sign(&p, &platform));
        assert_eq!(
            locked.check_package(&p, "local").unwrap().basis,
            "platform_key"
        );
        assert!(
            locked.check_package(&p, "git").is_err(),
            "git refused even when signed"
        );

        p.signature = Some(sign(&p, &other));
        assert!(guarded.check_package(&p, "local").is_err());

        let mut allow = guarded.clone();
        allow.allowlist = vec![("acme.x".into(), p.digest.clone())];
        assert_eq!(allow.check_package(&p, "local").unwrap().basis, "allowlist");
        assert_eq!(
            locked
                .check(&p.manifest.id, "1.0.0", "x", None, "builtin")
                .unwrap()
                .level,
            TrustLevel::Builtin
        );
    }

    #[test]
    fn any_change_to_the_package_breaks_the_signature() {
        let key = generate_key();
        let guarded = policy(TrustMode::SelfHostGuarded, &key, &generate_key());
        let mut p = pkg();
        p.signature = Some(sign(&p, &key));
        assert!(guarded.check_package(&p, "local").is_ok());

        let mut files = p.clone();
        files.files[0].1 = b"exfiltrate secrets".to_vec();
        assert!(guarded.check_package(&files, "local").is_err());

        let mut manifest = p.clone();
        manifest.manifest_json.push(b' ');
        assert!(guarded.check_package(&manifest, "local").is_err());

        let mut wasm = p.clone();
        wasm.digest = sha256_hex(b"other");
        assert!(guarded.check_package(&wasm, "local").is_err());

        // Boot re-verifies from the stored digests.
        let stored = TrustPolicy::stored_signature(&p).unwrap();
        assert!(
            guarded
                .check("acme.x", "1.0.0", &p.digest, Some(&stored), "local")
                .is_ok()
        );
        assert!(
            guarded
                .check("acme.x", "1.0.1", &p.digest, Some(&stored), "local")
                .is_err()
        );
    }

    #[test]
    fn key_and_allowlist_lists_parse_with_clear_errors() {
        let k = generate_key();
        let text = format!(
            "{}, {}",
            encode_public_key(&k.verifying_key()),
            encode_public_key(&generate_key().verifying_key())
        );
        assert_eq!(parse_keys(&text).unwrap().len(), 2);
        assert!(parse_keys("nope!").unwrap_err().contains("base64"));
        assert!(parse_keys("AAAA").unwrap_err().contains("32-byte"));
        let sum = "ab".repeat(32);
        assert_eq!(
            parse_allowlist(&format!("acme.x@{sum}")).unwrap()[0].0,
            "acme.x"
        );
        assert!(parse_allowlist("acme.x").is_err());
        assert!(parse_allowlist("acme.x@123").is_err());
        let round = parse_signing_key(&encode_signing_key(&k)).unwrap();
        assert_eq!(round.verifying_key(), k.verifying_key());
        assert_eq!(TrustMode::parse("saas_locked"), Some(TrustMode::SaasLocked));
        assert_eq!(TrustMode::parse("locked"), None);
    }
}
