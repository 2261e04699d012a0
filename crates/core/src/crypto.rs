//! Secrets at rest: AES-256-GCM with a random nonce per value.
//!
//! The key comes from `ENCRYPTION_KEY` (64 hex characters). When unset, a key is generated into
//! `<data>/encryption.key` with owner-only permissions and the host says so in its log; losing
//! that file makes stored secrets unreadable. Ciphertexts are `v1:<base64(nonce || sealed)>`.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::path::Path;

/// Prefix of every ciphertext this module writes.
pub const CIPHERTEXT_PREFIX: &str = "v1:";

/// Encryption failures. Messages never contain plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key is malformed.
    #[error("ENCRYPTION_KEY must be 64 hex characters (32 bytes)")]
    BadKey,
    /// A ciphertext could not be decrypted (wrong key or corrupted).
    #[error("a stored secret could not be decrypted (wrong ENCRYPTION_KEY or corrupted data)")]
    Decrypt,
    /// The key file could not be read or written.
    #[error("the encryption key file could not be used: {0}")]
    Io(#[from] std::io::Error),
}

/// Encrypts and decrypts secret values.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box from a hex key.
    pub fn from_hex(hex_key: &str) -> Result<SecretBox, CryptoError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Ok(SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        })
    }

    /// The configured key, or the key file in `data_dir` (generated on first use).
    pub fn from_config(key: Option<&str>, data_dir: &Path) -> Result<SecretBox, CryptoError> {
        if let Some(k) = key {
            return Self::from_hex(k);
        }
        let path = data_dir.join("encryption.key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return Self::from_hex(&existing);
        }
        std::fs::create_dir_all(data_dir)?;
        let key = Aes256Gcm::generate_key(OsRng);
        write_owner_only(&path, hex::encode(key).as_bytes())?;
        tracing::warn!(
            "ENCRYPTION_KEY is not set: generated a key at {} (owner-only). Back it up; \
             without it stored secrets cannot be decrypted.",
            path.display()
        );
        Self::from_hex(&std::fs::read_to_string(&path)?)
    }

    /// Encrypts a value.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("AES-GCM encryption cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{CIPHERTEXT_PREFIX}{}", B64.encode(out))
    }

    /// Decrypts a value written by [`Self::encrypt`].
    pub fn decrypt(&self, ciphertext: &str) -> Result<String, CryptoError> {
        let raw = ciphertext
            .strip_prefix(CIPHERTEXT_PREFIX)
            .ok_or(CryptoError::Decrypt)?;
        let bytes = B64.decode(raw).map_err(|_| CryptoError::Decrypt)?;
        if bytes.len() < 12 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }
}

/// Writes a file readable only by its owner.
pub fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering() {
        let b = SecretBox::from_hex(&"11".repeat(32)).unwrap();
        let c = b.encrypt("hunter2");
        assert!(c.starts_with("v1:") && !c.contains("hunter2"));
        assert_eq!(b.decrypt(&c).unwrap(), "hunter2");
        assert_ne!(c, b.encrypt("hunter2"), "nonces must differ");
        let other = SecretBox::from_hex(&"22".repeat(32)).unwrap();
        assert!(other.decrypt(&c).is_err());
        assert!(b.decrypt("v1:AAAA").is_err());
        assert!(SecretBox::from_hex("abc").is_err());
    }

    #[test]
    fn generates_an_owner_only_key_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::from_config(None, dir.path()).unwrap();
        let b = SecretBox::from_config(None, dir.path()).unwrap();
        assert_eq!(b.decrypt(&a.encrypt("x")).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("encryption.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
