//! Key-wrapper contract cases ([`KeyWrapper`]: the local key file, KMS), and the envelope sealing
//! (`crate::settings::envelope`) over each adapter: a data key is fresh and unwraps to itself, a tampered, truncated
//! or foreign wrapped key is refused as undecryptable, and a sealed value opens only for its own context under its
//! own master key, its plaintext nowhere in the stored form.

use std::sync::Arc;

use async_trait::async_trait;

use crate::ports::secrets::{DATA_KEY_BYTES, MAX_WRAPPED_KEY_BYTES};
use crate::ports::{KeyWrapper, SecretsError};
use crate::settings::envelope::{self, Sealed};

/// Master keys of one adapter.
#[async_trait]
pub trait KeyWrapperFactory: Sync {
    /// A master key.
    async fn keys(&self) -> Arc<dyn KeyWrapper>;
    /// Another master key of the same kind (another key file, another KMS key).
    async fn other_keys(&self) -> Arc<dyn KeyWrapper>;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub async fn data_keys_are_fresh_and_unwrap(f: &impl KeyWrapperFactory) {
    let k = f.keys().await;
    assert!(!k.scheme().is_empty() && k.scheme().bytes().all(|b| b.is_ascii_lowercase()), "{}", k.scheme());
    let a = k.generate_data_key().await.unwrap();
    let b = k.generate_data_key().await.unwrap();
    assert_ne!(a.plaintext[..], b.plaintext[..], "a fresh key each time");
    assert_ne!(a.wrapped, b.wrapped);
    assert_ne!(a.plaintext[..], [0u8; DATA_KEY_BYTES][..]);
    for key in [&a, &b] {
        assert!(!key.wrapped.is_empty() && key.wrapped.len() <= MAX_WRAPPED_KEY_BYTES, "{}", key.wrapped.len());
        assert!(!contains(&key.wrapped, &key.plaintext[..8]), "the wrapped key does not carry the plaintext");
        assert_eq!(k.unwrap(&key.wrapped).await.unwrap()[..], key.plaintext[..]);
    }
    // and again: unwrapping is repeatable
    assert_eq!(k.unwrap(&a.wrapped).await.unwrap()[..], a.plaintext[..]);
}

pub async fn concurrent_data_keys_are_distinct(f: &impl KeyWrapperFactory) {
    let k = f.keys().await;
    let keys = futures::future::join_all((0..8).map(|_| k.generate_data_key())).await;
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        let key = key.unwrap();
        assert!(seen.insert(key.plaintext.to_vec()), "two data keys alike");
        assert_eq!(k.unwrap(&key.wrapped).await.unwrap()[..], key.plaintext[..]);
    }
}

pub async fn tampered_or_foreign_wrapped_keys_are_refused(f: &impl KeyWrapperFactory) {
    let k = f.keys().await;
    let key = k.generate_data_key().await.unwrap();
    let n = key.wrapped.len();
    for i in [0, n / 2, n - 1] {
        let mut bad = key.wrapped.clone();
        bad[i] ^= 0x01;
        let r = k.unwrap(&bad).await;
        assert!(matches!(r, Err(SecretsError::Undecryptable(_))), "byte {i} flipped: {:?}", r.map(|_| ()));
    }
    for bad in [key.wrapped[..n - 1].to_vec(), Vec::new(), b"not a wrapped key at all".to_vec(), vec![0u8; n]] {
        let r = k.unwrap(&bad).await;
        assert!(matches!(r, Err(SecretsError::Undecryptable(_))), "{bad:?}: {:?}", r.map(|_| ()));
    }
    let other = f.other_keys().await;
    let r = other.unwrap(&key.wrapped).await;
    assert!(matches!(r, Err(SecretsError::Undecryptable(_))), "another master key: {:?}", r.map(|_| ()));
}

pub async fn sealed_values_round_trip_and_bind_their_context(f: &impl KeyWrapperFactory) {
    let k = f.keys().await;
    let secret = "sk-contract-Zq8v-0123456789-ünï€";
    let sealed = envelope::seal(k.as_ref(), "setting:llm_api_key", secret).await.unwrap();
    assert!(sealed.starts_with(&format!("nt-sealed.v1.{}.", k.scheme())), "{sealed}");
    assert!(!sealed.contains("sk-contract") && !sealed.contains("Zq8v"), "no plaintext in {sealed}");
    assert_eq!(envelope::open(k.as_ref(), "setting:llm_api_key", &sealed).await.unwrap().expose(), secret);
    let empty = envelope::seal(k.as_ref(), "setting:x", "").await.unwrap();
    assert_eq!(envelope::open(k.as_ref(), "setting:x", &empty).await.unwrap().expose(), "");

    // moved onto another setting
    let moved = envelope::open(k.as_ref(), "setting:redis_url", &sealed).await;
    assert!(matches!(moved, Err(SecretsError::Undecryptable(_))), "{moved:?}");
    // the ciphertext, the nonce or the wrapped key edited
    let parsed = Sealed::parse(&sealed).unwrap();
    let mut c = parsed.clone();
    c.ciphertext[0] ^= 0x80;
    let mut n = parsed.clone();
    n.nonce[0] ^= 0x01;
    let mut w = parsed.clone();
    let last = w.wrapped_key.len() - 1;
    w.wrapped_key[last] ^= 0x01;
    for edited in [c, n, w] {
        let r = envelope::open(k.as_ref(), "setting:llm_api_key", &edited.encode()).await;
        assert!(matches!(r, Err(SecretsError::Undecryptable(_))), "{r:?}");
    }
    // sealed under another master key
    let r = envelope::open(f.other_keys().await.as_ref(), "setting:llm_api_key", &sealed).await;
    assert!(matches!(r, Err(SecretsError::Undecryptable(_))), "{r:?}");
}
