//! The signing backend of `jsonwebtoken`: HMAC-SHA2 only (RustCrypto's `hmac` + `sha2`), installed as the process's
//! [`CryptoProvider`]. Tokens here are HS256 and verified with the algorithm pinned (`tokens.rs`); the crate's
//! bundled backends would link RSA, ECDSA and EdDSA code (aws-lc: ~2.4 MB of every function binary) that no token
//! of ours can reach. HS384/HS512 are kept so a token signed with them is read and refused by the pinned check,
//! not by a missing backend. Any other algorithm is an invalid-algorithm error.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::{Sha256, Sha384, Sha512};

/// One HMAC key for one algorithm.
#[derive(Clone)]
enum HmacKey {
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
    Sha512(Hmac<Sha512>),
}

struct HmacAlg {
    algorithm: Algorithm,
    key: HmacKey,
}

impl HmacAlg {
    fn new(algorithm: &Algorithm, secret: &[u8]) -> Result<Self> {
        let bad = |_| ErrorKind::InvalidKeyFormat;
        let key = match algorithm {
            Algorithm::HS256 => HmacKey::Sha256(Hmac::new_from_slice(secret).map_err(bad)?),
            Algorithm::HS384 => HmacKey::Sha384(Hmac::new_from_slice(secret).map_err(bad)?),
            Algorithm::HS512 => HmacKey::Sha512(Hmac::new_from_slice(secret).map_err(bad)?),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        Ok(HmacAlg { algorithm: *algorithm, key })
    }

    fn mac(&self, msg: &[u8]) -> Vec<u8> {
        match self.key.clone() {
            HmacKey::Sha256(mut m) => {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            HmacKey::Sha384(mut m) => {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            HmacKey::Sha512(mut m) => {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
        }
    }
}

impl Signer<Vec<u8>> for HmacAlg {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        Ok(self.mac(msg))
    }
}

impl JwtSigner for HmacAlg {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl Verifier<Vec<u8>> for HmacAlg {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        // Constant-time comparison by the MAC itself.
        let ok = match self.key.clone() {
            HmacKey::Sha256(mut m) => {
                m.update(msg);
                m.verify_slice(signature).is_ok()
            }
            HmacKey::Sha384(mut m) => {
                m.update(msg);
                m.verify_slice(signature).is_ok()
            }
            HmacKey::Sha512(mut m) => {
                m.update(msg);
                m.verify_slice(signature).is_ok()
            }
        };
        if ok { Ok(()) } else { Err(SignatureError::new()) }
    }
}

impl JwtVerifier for HmacAlg {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: |alg, key: &EncodingKey| {
        if key.family() != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(Box::new(HmacAlg::new(alg, key.as_bytes())?))
    },
    verifier_factory: |alg, key: &DecodingKey| {
        if key.family() != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(Box::new(HmacAlg::new(alg, key.try_get_as_bytes()?)?))
    },
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs the HMAC backend for this process (once; later calls, and a process whose backend is already chosen,
/// change nothing).
pub fn install() {
    let _ = PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::crypto::{sign, verify};

    use super::*;

    #[test]
    fn signs_and_verifies_hmac_and_refuses_the_rest() {
        install();
        let key = EncodingKey::from_secret(b"a-secret-of-thirty-two-bytes-xxx");
        let dkey = DecodingKey::from_secret(b"a-secret-of-thirty-two-bytes-xxx");
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let sig = sign(b"header.claims", &key, alg).unwrap();
            assert!(verify(&sig, b"header.claims", &dkey, alg).unwrap(), "{alg:?}");
            assert!(!verify(&sig, b"header.claimz", &dkey, alg).unwrap_or(false), "{alg:?}");
        }
        // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe"), as base64url.
        let sig = sign(b"what do ya want for nothing?", &EncodingKey::from_secret(b"Jefe"), Algorithm::HS256).unwrap();
        assert_eq!(sig, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
        assert!(sign(b"x", &key, Algorithm::RS256).is_err());
    }
}
