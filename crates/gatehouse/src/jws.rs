//! A JWS signing key: generation, PEM loading, signing and verification, and its public JWK.
//! Used where Gatehouse itself mints a JWT — the development authorization server's tokens, the
//! gateway's identity assertions to its upstreams — never to verify a client's token (that is
//! [`crate::verify`], with the issuer's published keys).

use std::fmt;
use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::{AsBigEndian, AsDer, EcPublicKeyUncompressedBin, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use serde::{Deserialize, Serialize};

/// JWS algorithm of the tokens a [`SigningKey`] signs (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256 (the default; small keys and signatures).
    #[default]
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit key.
    RS256,
}

impl SigningAlg {
    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a signing key could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read signing key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM text is not a private key of the configured algorithm.
    #[error("signing key is not a valid {alg} private key in PEM form: {reason}")]
    Invalid {
        /// The configured algorithm.
        alg: SigningAlg,
        /// What was wrong (never the key material).
        reason: &'static str,
    },
    /// The crypto library failed to generate a key.
    #[error("key generation failed")]
    Generate,
}

enum Material {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The private key tokens are signed with, plus its public JWK and `kid`.
pub struct SigningKey {
    alg: SigningAlg,
    kid: String,
    jwk: Value,
    material: Material,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    /// Generates a fresh key (P-256 for ES256, RSA-2048 for RS256).
    pub fn generate(alg: SigningAlg) -> Result<Self, KeyError> {
        let material = match alg {
            SigningAlg::ES256 => Material::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generate)?,
            ),
            SigningAlg::RS256 => Material::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?,
            ),
        };
        Self::from_material(alg, material)
    }

    /// Loads a key from a PEM file (see [`SigningKey::from_pem`]).
    pub fn from_pem_file(alg: SigningAlg, path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(alg, &text)
    }

    /// Loads a key from PEM text: `PRIVATE KEY` (PKCS#8) for either algorithm, `EC PRIVATE KEY`
    /// (SEC1) for ES256, `RSA PRIVATE KEY` (PKCS#1) for RS256.
    pub fn from_pem(alg: SigningAlg, pem: &str) -> Result<Self, KeyError> {
        let invalid = |reason| KeyError::Invalid { alg, reason };
        let (label, der) = decode_pem(pem).ok_or(invalid("no PEM block found"))?;
        let material = match (alg, label.as_str()) {
            (SigningAlg::ES256, "PRIVATE KEY" | "EC PRIVATE KEY") => Material::Ec(
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|_| invalid("not a P-256 private key"))?,
            ),
            (SigningAlg::RS256, "PRIVATE KEY") => Material::Rsa(
                RsaKeyPair::from_pkcs8(&der).map_err(|_| invalid("not an RSA private key"))?,
            ),
            (SigningAlg::RS256, "RSA PRIVATE KEY") => Material::Rsa(
                RsaKeyPair::from_der(&der).map_err(|_| invalid("not an RSA private key"))?,
            ),
            _ => return Err(invalid("unexpected PEM label for this algorithm")),
        };
        if let Material::Rsa(k) = &material {
            // RFC 7518 §3.3: a key of size 2048 bits or larger MUST be used with RS256.
            if k.public_modulus_len() < 256 {
                return Err(invalid("RSA key shorter than 2048 bits"));
            }
        }
        Self::from_material(alg, material)
    }

    fn from_material(alg: SigningAlg, material: Material) -> Result<Self, KeyError> {
        // Members in lexicographic order, as RFC 7638 §3 requires for the thumbprint input.
        let (thumb_input, mut jwk) = match &material {
            Material::Ec(k) => {
                let point: EcPublicKeyUncompressedBin<'_> = k
                    .public_key()
                    .as_be_bytes()
                    .map_err(|_| KeyError::Generate)?;
                let point = point.as_ref();
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                (
                    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
                    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                )
            }
            Material::Rsa(k) => {
                let public = k.public_key();
                let n = b64(public.modulus().big_endian_without_leading_zero());
                let e = b64(public.exponent().big_endian_without_leading_zero());
                (
                    format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
                    json!({"kty": "RSA", "n": n, "e": e}),
                )
            }
        };
        let kid = b64(digest(&SHA256, thumb_input.as_bytes()).as_ref());
        let obj = jwk.as_object_mut().expect("built as an object");
        obj.insert("kid".into(), json!(kid));
        obj.insert("use".into(), json!("sig"));
        obj.insert("alg".into(), json!(alg.as_str()));
        Ok(Self {
            alg,
            kid,
            jwk,
            material,
        })
    }

    /// The algorithm this key signs with (one key, one algorithm: RFC 8725 §3.1).
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key id: its RFC 7638 JWK thumbprint (SHA-256), stable for a key loaded from a file.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK (`kty`, key parameters, `kid`, `use: sig`, `alg`).
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The private key as PKCS#8 PEM, e.g. to save a generated key for the next start.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let der: Vec<u8> = match &self.material {
            Material::Ec(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Material::Rsa(k) => {
                AsDer::<Pkcs8V1Der<'static>>::as_der(k).map(|d| d.as_ref().to_vec())
            }
        }
        .map_err(|_| KeyError::Generate)?;
        Ok(encode_pem("PRIVATE KEY", &der))
    }

    /// Signs a JWS signing input (RFC 7515 §5.1 step 8).
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.material {
            Material::Ec(k) => k
                .sign(&rng, input)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Material::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .expect("RSA signing");
                sig
            }
        }
    }

    /// A compact JWS of `claims` with header `alg`, `typ` and `kid`.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> String {
        let header = json!({ "alg": self.alg.as_str(), "typ": typ, "kid": self.kid });
        self.sign_jws(&header, claims)
    }

    /// A compact JWS of `claims` under `header` as given (tests forge odd headers with it).
    pub fn sign_jws(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    /// Verifies a signature made by [`SigningKey::sign`].
    pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Ec(k) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.public_key())
                .verify(input, signature)
                .is_ok(),
            Material::Rsa(k) => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k.public_key())
                .verify(input, signature)
                .is_ok(),
        }
    }
}

/// Base64url without padding (RFC 7515 §2), as JWS parts are encoded.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// 128 random bits, base64url: a `jti`, a nonce.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("system RNG");
    b64(&bytes)
}

/// Returns the label and DER bytes of the first PEM block (RFC 7468).
fn decode_pem(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body_and_end = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body = &body_and_end[..body_and_end.find(&end_marker)?];
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Some((label.to_owned(), STANDARD.decode(b64).ok()?))
}

fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_sign_verify_and_jwk_shape() {
        let k = SigningKey::generate(SigningAlg::ES256).unwrap();
        let sig = k.sign(b"hello");
        assert_eq!(sig.len(), 64, "JWS ES256 signatures are fixed-size r||s");
        assert!(k.verify(b"hello", &sig));
        assert!(!k.verify(b"hellO", &sig));
        let jwk = k.public_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["kid"], k.kid());
        assert!(jwk.get("d").is_none(), "private part must not be published");
    }

    #[test]
    fn rs256_sign_verify_and_jwk_shape() {
        let k = SigningKey::generate(SigningAlg::RS256).unwrap();
        let sig = k.sign(b"hello");
        assert_eq!(sig.len(), 256);
        assert!(k.verify(b"hello", &sig));
        assert!(!k.verify(b"other", &sig));
        let jwk = k.public_jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["alg"], "RS256");
        assert!(jwk.get("d").is_none() && jwk.get("p").is_none());
    }

    #[test]
    fn pem_round_trip_keeps_kid() {
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let k = SigningKey::generate(alg).unwrap();
            let pem = k.to_pkcs8_pem().unwrap();
            let loaded = SigningKey::from_pem(alg, &pem).unwrap();
            assert_eq!(loaded.kid(), k.kid(), "{alg}");
            assert!(loaded.verify(b"m", &k.sign(b"m")));
        }
    }

    #[test]
    fn pem_of_the_wrong_kind_is_refused() {
        let ec = SigningKey::generate(SigningAlg::ES256)
            .unwrap()
            .to_pkcs8_pem()
            .unwrap();
        assert!(matches!(
            SigningKey::from_pem(SigningAlg::RS256, &ec),
            Err(KeyError::Invalid { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem(SigningAlg::ES256, "not a pem"),
            Err(KeyError::Invalid { .. })
        ));
        let public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(SigningKey::from_pem(SigningAlg::ES256, public).is_err());
    }
}
