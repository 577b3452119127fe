//! Envelope encryption of stored secrets: every value gets a fresh 256-bit data key from the master key
//! ([`KeyWrapper`]: KMS in AWS, the data dir's key file locally), is encrypted with AES-256-GCM under it, and is
//! stored with the wrapped data key beside the ciphertext; the plaintext data key is dropped (zeroed) at once. The
//! associated data binds the ciphertext to its context (the setting's key) and to the stored form's version and
//! scheme: a ciphertext copied onto another setting, or a header edited, does not open.
//!
//! The stored form is one self-describing ASCII string:
//!
//! ```text
//! nt-sealed.v1.<scheme>.<wrapped data key>.<nonce>.<ciphertext + tag>      (base64url, no padding)
//! ```
//!
//! `scheme` names the master key's kind (`local`, `kms`), so a value sealed under KMS and read by a platform with a
//! local key file is refused with a message saying so, not a bare "bad tag". A later format gets `v2`; readers
//! refuse versions they do not know.
//!
//! AES-256-GCM is ring's (`ring::aead`): ring is already every binary's TLS crypto provider (rustls), so sealing
//! adds no crypto code, and its AES-GCM is the constant-time, hardware-accelerated implementation rustls uses.
//! Nonces are 96 random bits; a data key encrypts one value, so a nonce is never reused under a key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::ports::secrets::{DATA_KEY_BYTES, DataKeyBytes, MAX_WRAPPED_KEY_BYTES};
use crate::ports::{KeyWrapper, Secret, SecretsError};

/// First field of every sealed value.
pub const SEALED_PREFIX: &str = "nt-sealed";
/// The stored form's version this code writes and reads.
pub const VERSION: &str = "v1";
/// Longest stored form read (a 4,096-character value is at most 16 KiB of UTF-8, ~22 KiB sealed).
pub const MAX_SEALED_CHARS: usize = 64 * 1024;
/// Bytes of a nonce (96 bits).
pub const NONCE_BYTES: usize = NONCE_LEN;
/// Bytes of the authentication tag appended to every ciphertext.
pub const TAG_BYTES: usize = 16;

/// A sealed value, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub scheme: String,
    pub wrapped_key: Vec<u8>,
    pub nonce: [u8; NONCE_BYTES],
    /// Ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// True when `text` starts like a sealed value (of any version).
    pub fn looks_sealed(text: &str) -> bool {
        text.starts_with(SEALED_PREFIX) && text[SEALED_PREFIX.len()..].starts_with('.')
    }

    pub fn parse(text: &str) -> Result<Sealed, SecretsError> {
        let bad = |why: &str| SecretsError::Malformed(why.to_owned());
        if text.len() > MAX_SEALED_CHARS {
            return Err(bad("too long"));
        }
        let parts: Vec<&str> = text.split('.').collect();
        if parts.first() != Some(&SEALED_PREFIX) {
            return Err(bad("not a sealed value"));
        }
        match parts.get(1) {
            Some(&VERSION) => {}
            Some(v) => return Err(SecretsError::Malformed(format!("version {v:.8} is not known to this code"))),
            None => return Err(bad("no version")),
        }
        let [_, _, scheme, wrapped, nonce, ciphertext] = parts[..] else { return Err(bad("wrong number of fields")) };
        if scheme.is_empty() || scheme.len() > 16 || !scheme.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(bad("bad scheme"));
        }
        let decode = |field: &str, what: &str| B64.decode(field).map_err(|_| bad(&format!("{what} is not base64url")));
        let wrapped_key = decode(wrapped, "the wrapped key")?;
        if wrapped_key.is_empty() || wrapped_key.len() > MAX_WRAPPED_KEY_BYTES {
            return Err(bad("bad wrapped key length"));
        }
        let nonce: [u8; NONCE_BYTES] = decode(nonce, "the nonce")?.try_into().map_err(|_| bad("bad nonce length"))?;
        let ciphertext = decode(ciphertext, "the ciphertext")?;
        if ciphertext.len() < TAG_BYTES {
            return Err(bad("ciphertext shorter than its tag"));
        }
        Ok(Sealed { scheme: scheme.to_owned(), wrapped_key, nonce, ciphertext })
    }

    pub fn encode(&self) -> String {
        format!(
            "{SEALED_PREFIX}.{VERSION}.{}.{}.{}.{}",
            self.scheme,
            B64.encode(&self.wrapped_key),
            B64.encode(self.nonce),
            B64.encode(&self.ciphertext)
        )
    }
}

/// The associated data of a value: the format, the scheme and the context (the setting's key).
fn associated_data(scheme: &str, context: &str) -> Vec<u8> {
    format!("{SEALED_PREFIX}/{VERSION}/{scheme}/{context}").into_bytes()
}

/// Seals `plaintext` for `context` (a setting's key) under a fresh data key from `keys`.
pub async fn seal(keys: &dyn KeyWrapper, context: &str, plaintext: &str) -> Result<String, SecretsError> {
    let key = keys.generate_data_key().await?;
    if key.wrapped.is_empty() || key.wrapped.len() > MAX_WRAPPED_KEY_BYTES {
        return Err(SecretsError::Unavailable(format!(
            "the key service returned a {}-byte wrapped key",
            key.wrapped.len()
        )));
    }
    let (nonce, ciphertext) =
        aead_seal(&key.plaintext, &associated_data(keys.scheme(), context), plaintext.as_bytes())?;
    Ok(Sealed { scheme: keys.scheme().to_owned(), wrapped_key: key.wrapped, nonce, ciphertext }.encode())
}

/// Opens a value [`seal`] made for the same `context` under the same master key.
pub async fn open(keys: &dyn KeyWrapper, context: &str, sealed: &str) -> Result<Secret, SecretsError> {
    let s = Sealed::parse(sealed)?;
    if s.scheme != keys.scheme() {
        return Err(SecretsError::Undecryptable(format!(
            "sealed with a `{}` master key; this platform's is `{}`",
            s.scheme,
            keys.scheme()
        )));
    }
    let key = keys.unwrap(&s.wrapped_key).await?;
    let plain = Zeroizing::new(aead_open(&key, &s.nonce, &associated_data(&s.scheme, context), &s.ciphertext)?);
    let text = std::str::from_utf8(&plain).map_err(|_| SecretsError::Malformed("the plaintext is not UTF-8".into()))?;
    Ok(Secret::new(text))
}

fn cipher(key: &[u8; DATA_KEY_BYTES]) -> Result<LessSafeKey, SecretsError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SecretsError::Unavailable("AES-256-GCM key setup failed".into()))
}

/// A random 256-bit key (the operating system's generator).
pub fn random_key() -> Result<DataKeyBytes, SecretsError> {
    let mut key = Zeroizing::new([0u8; DATA_KEY_BYTES]);
    SystemRandom::new().fill(&mut key[..]).map_err(|_| SecretsError::Unavailable("no system randomness".into()))?;
    Ok(key)
}

/// AES-256-GCM with a random nonce: the nonce and the ciphertext with its tag. The building block of [`seal`] and
/// of the local key file's wrapping.
pub fn aead_seal(
    key: &[u8; DATA_KEY_BYTES],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; NONCE_BYTES], Vec<u8>), SecretsError> {
    let mut nonce = [0u8; NONCE_BYTES];
    SystemRandom::new().fill(&mut nonce).map_err(|_| SecretsError::Unavailable("no system randomness".into()))?;
    let mut buf = plaintext.to_vec();
    cipher(key)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
        .map_err(|_| SecretsError::Unavailable("AES-256-GCM encryption failed".into()))?;
    Ok((nonce, buf))
}

/// Opens what [`aead_seal`] made with the same key and associated data; anything else (another key, other
/// associated data, one flipped bit) is [`SecretsError::Undecryptable`].
pub fn aead_open(
    key: &[u8; DATA_KEY_BYTES],
    nonce: &[u8; NONCE_BYTES],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, SecretsError> {
    let mut buf = ciphertext.to_vec();
    let n = cipher(key)?
        .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), &mut buf)
        .map_err(|_| SecretsError::Undecryptable("authentication failed (tampered, moved or another key)".into()))?
        .len();
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::ports::DataKey;

    /// A master key in memory for unit tests (the adapters run the contract suite).
    pub(crate) struct MemoryKeys {
        master: [u8; DATA_KEY_BYTES],
        scheme: &'static str,
    }

    impl MemoryKeys {
        pub(crate) fn new() -> Self {
            MemoryKeys { master: *random_key().unwrap(), scheme: "local" }
        }
    }

    #[async_trait]
    impl KeyWrapper for MemoryKeys {
        fn scheme(&self) -> &'static str {
            self.scheme
        }
        async fn generate_data_key(&self) -> Result<DataKey, SecretsError> {
            let plaintext = random_key()?;
            let (nonce, ct) = aead_seal(&self.master, b"wrap", &plaintext[..])?;
            Ok(DataKey { plaintext, wrapped: [&nonce[..], &ct].concat() })
        }
        async fn unwrap(&self, wrapped: &[u8]) -> Result<DataKeyBytes, SecretsError> {
            let bad = || SecretsError::Undecryptable("bad wrapped key".into());
            let (nonce, ct) = wrapped.split_at_checked(NONCE_BYTES).ok_or_else(bad)?;
            let plain = aead_open(&self.master, nonce.try_into().map_err(|_| bad())?, b"wrap", ct)?;
            Ok(Zeroizing::new(plain.try_into().map_err(|_| bad())?))
        }
    }

    #[tokio::test]
    async fn a_value_round_trips_and_its_plaintext_is_nowhere_in_the_stored_form() {
        let keys = MemoryKeys::new();
        let sealed = seal(&keys, "llm_api_key", "sk-live-0123456789").await.unwrap();
        assert!(sealed.starts_with("nt-sealed.v1.local."), "{sealed}");
        assert!(!sealed.contains("sk-live"), "{sealed}");
        assert!(Sealed::looks_sealed(&sealed));
        assert_eq!(open(&keys, "llm_api_key", &sealed).await.unwrap().expose(), "sk-live-0123456789");
        // A fresh data key and nonce each time.
        let again = seal(&keys, "llm_api_key", "sk-live-0123456789").await.unwrap();
        assert_ne!(sealed, again);
        assert_eq!(Sealed::parse(&sealed).unwrap().encode(), sealed);
    }

    #[tokio::test]
    async fn a_moved_edited_or_foreign_value_does_not_open() {
        let keys = MemoryKeys::new();
        let sealed = seal(&keys, "llm_api_key", "sk-live").await.unwrap();
        // moved to another setting
        assert!(matches!(open(&keys, "redis_url", &sealed).await, Err(SecretsError::Undecryptable(_))));
        // one bit of the ciphertext flipped
        let mut s = Sealed::parse(&sealed).unwrap();
        s.ciphertext[0] ^= 1;
        assert!(matches!(open(&keys, "llm_api_key", &s.encode()).await, Err(SecretsError::Undecryptable(_))));
        // the scheme edited: refused by name, and its tag would not match either
        let kms = sealed.replacen(".local.", ".kms.", 1);
        let e = open(&keys, "llm_api_key", &kms).await.unwrap_err();
        assert!(e.to_string().contains("`kms`"), "{e}");
        // another master key
        assert!(matches!(open(&MemoryKeys::new(), "llm_api_key", &sealed).await, Err(SecretsError::Undecryptable(_))));
        // versions and garbage
        for bad in [
            sealed.replacen(".v1.", ".v2.", 1),
            "nt-sealed.v1.local.AAAA".to_owned(),
            "sk-live".to_owned(),
            format!("{sealed}.extra"),
            "nt-sealed.v1.local.!!!.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ] {
            assert!(matches!(open(&keys, "llm_api_key", &bad).await, Err(SecretsError::Malformed(_))), "{bad}");
        }
    }
}
