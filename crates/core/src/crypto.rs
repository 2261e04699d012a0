//! Secrets at rest: AES-256-GCM with a random nonce per value.
//!
//! The key comes from `ENCRYPTION_KEY`, in any of Nitejar's three forms, chosen by length alone:
//! 64 hex characters, 44 base64 characters (32 bytes, padded), or exactly 32 characters used as
//! their bytes. When unset, a key is generated into `<data>/encryption.key` (hex) with
//! owner-only permissions and the host says so in its log; losing that file makes stored
//! secrets unreadable.
//!
//! This host writes `v1:<base64(nonce (12) || ciphertext || tag)>`. It also reads the values
//! Nitejar stored, `enc:<base64(iv (16) || tag (16) || ciphertext)>`, with the same key, so an
//! imported config blob is used as it is and never rewritten.

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::aes::Aes256;
use aes_gcm::{Aes256Gcm, AesGcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::path::Path;

/// Prefix of every ciphertext this module writes.
pub const CIPHERTEXT_PREFIX: &str = "v1:";

/// Prefix of the ciphertexts Nitejar writes (read, never written, here).
pub const NITEJAR_CIPHERTEXT_PREFIX: &str = "enc:";

/// AES-256-GCM with Nitejar's 16-byte IV.
type NitejarGcm = AesGcm<Aes256, U16>;

/// Encryption failures. Messages never contain plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key is malformed.
    #[error(
        "ENCRYPTION_KEY must be 64 hex characters, 44 base64 characters or 32 characters \
         (32 bytes each way)"
    )]
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
    nitejar: NitejarGcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box from a key in any of the three forms (see the module docs).
    pub fn from_key(key: &str) -> Result<SecretBox, CryptoError> {
        let key = key.trim();
        let bytes = match key.len() {
            64 => hex::decode(key).map_err(|_| CryptoError::BadKey)?,
            44 => B64.decode(key).map_err(|_| CryptoError::BadKey)?,
            32 => key.as_bytes().to_vec(),
            _ => return Err(CryptoError::BadKey),
        };
        let Ok(bytes) = <[u8; 32]>::try_from(bytes) else {
            return Err(CryptoError::BadKey);
        };
        Ok(SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            nitejar: NitejarGcm::new(Key::<NitejarGcm>::from_slice(&bytes)),
        })
    }

    /// A box from a hex key (64 hex characters).
    pub fn from_hex(hex_key: &str) -> Result<SecretBox, CryptoError> {
        if hex_key.trim().len() != 64 {
            return Err(CryptoError::BadKey);
        }
        Self::from_key(hex_key)
    }

    /// The configured key, or the key file in `data_dir` (generated on first use).
    pub fn from_config(key: Option<&str>, data_dir: &Path) -> Result<SecretBox, CryptoError> {
        if let Some(k) = key {
            return Self::from_key(k);
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

    /// Decrypts a value written by [`Self::encrypt`] (`v1:`) or by Nitejar (`enc:`).
    pub fn decrypt(&self, ciphertext: &str) -> Result<String, CryptoError> {
        if let Some(raw) = ciphertext.strip_prefix(NITEJAR_CIPHERTEXT_PREFIX) {
            return self.decrypt_nitejar(raw);
        }
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

    /// `base64(iv (16) || tag (16) || ciphertext)`.
    fn decrypt_nitejar(&self, raw: &str) -> Result<String, CryptoError> {
        let bytes = B64.decode(raw).map_err(|_| CryptoError::Decrypt)?;
        if bytes.len() < 32 {
            return Err(CryptoError::Decrypt);
        }
        let (iv, rest) = bytes.split_at(16);
        let (tag, ciphertext) = rest.split_at(16);
        // The AEAD takes ciphertext || tag.
        let mut sealed = ciphertext.to_vec();
        sealed.extend_from_slice(tag);
        let plain = self
            .nitejar
            .decrypt(Nonce::<U16>::from_slice(iv), sealed.as_slice())
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }

    /// Whether `value` is a ciphertext this box can be asked to decrypt (either format).
    pub fn is_ciphertext(value: &str) -> bool {
        value.starts_with(CIPHERTEXT_PREFIX) || value.starts_with(NITEJAR_CIPHERTEXT_PREFIX)
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

    /// Values encrypted by Nitejar's own code path (Node.js `crypto`, AES-256-GCM, 16-byte IV,
    /// `enc:` + base64(iv || tag || ciphertext)), one per key form.
    const NITEJAR_VECTORS: [(&str, &str, &str); 3] = [
        (
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            "enc:AAECAwQFBgcICQoLDA0OD4u5HEp+xN6LPxU1+re8APvVs7Kt6oEeBJxUYXQaQ8lLpHHAe8PS1Q+Y/Kwxiu/7Xmd56ewGZtyW7bKO1TrW",
            "123456789:AAEhBOweik9ai3Fs2yZ-nitejarTestToken",
        ),
        (
            "obLD1OX2BxgpOktcbX6PkKGyw9Tl9gcYKTpLXG1+j5A=",
            "enc:8ODQwLCgkIBwYFBAMCAQAEQaSAAk96RKR2CVIOWHzK4gVeEnNCoIjZS3bQC+KzuA8ceCyTAVef6soAmU",
            "gh-webhook-secret-0123456789",
        ),
        (
            "nitejar-raw-key-32-characters!!!",
            "enc:Dw4NDAsKCQgHBgUEAwIBAFkx3BdNcQnfqHzaxMzXiY6PqvYmTGonxTAX0aoPKH/x41H58N1i",
            "ünïcødé secret ✓",
        ),
    ];

    #[test]
    fn reads_nitejar_values_with_each_key_form() {
        for (key, stored, plain) in NITEJAR_VECTORS {
            let b = SecretBox::from_key(key).unwrap();
            assert_eq!(
                b.decrypt(stored).unwrap(),
                plain,
                "key form of length {}",
                key.len()
            );
            assert!(SecretBox::is_ciphertext(stored));
            // This host's own values work with the same key too.
            assert_eq!(b.decrypt(&b.encrypt(plain)).unwrap(), plain);
        }
        // Another key, or a flipped byte (the tag), is refused.
        let other = SecretBox::from_key(&"ab".repeat(32)).unwrap();
        assert!(other.decrypt(NITEJAR_VECTORS[0].1).is_err());
        let mut bytes = B64.decode(&NITEJAR_VECTORS[0].1[4..]).unwrap();
        bytes[20] ^= 1;
        let tampered = format!("enc:{}", B64.encode(bytes));
        let b = SecretBox::from_key(NITEJAR_VECTORS[0].0).unwrap();
        assert!(b.decrypt(&tampered).is_err());
        assert!(b.decrypt("enc:AAAA").is_err());
        assert!(!SecretBox::is_ciphertext("plain value"));
    }

    #[test]
    fn key_forms_are_chosen_by_length() {
        assert!(SecretBox::from_key(&"1".repeat(63)).is_err());
        assert!(
            SecretBox::from_key(&"z".repeat(64)).is_err(),
            "64 characters must be hex"
        );
        // 44 characters that are not base64 of 32 bytes.
        assert!(SecretBox::from_key(&"!".repeat(44)).is_err());
        // 32 characters that are more than 32 bytes.
        assert!(SecretBox::from_key(&"é".repeat(32)).is_err());
        assert!(
            SecretBox::from_hex(NITEJAR_VECTORS[2].0).is_err(),
            "from_hex is hex only"
        );
        let e = SecretBox::from_key("short").unwrap_err().to_string();
        assert!(e.contains("64 hex") && e.contains("44 base64") && e.contains("32 characters"));
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
