//! Key material for every algorithm the token matrix exercises, and its JWK / PEM forms.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::{
    AsBigEndian, AsDer, EcPublicKeyUncompressedBin, Pkcs8V1Der, PublicKeyX509Der,
};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA384, RSA_PKCS1_SHA512, RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512,
    RsaEncoding,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// A JWS algorithm (RFC 7518 §3.1, RFC 8037 §3.1) the forge can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 / SHA-256, 2048-bit key.
    RS256,
    /// RSASSA-PSS / SHA-256, 2048-bit key.
    PS256,
    /// RSASSA-PKCS1-v1_5 / SHA-384, 2048-bit key.
    RS384,
    /// RSASSA-PKCS1-v1_5 / SHA-512, 2048-bit key.
    RS512,
    /// RSASSA-PSS / SHA-384, 2048-bit key.
    PS384,
    /// RSASSA-PSS / SHA-512, 2048-bit key.
    PS512,
    /// ECDSA P-256 / SHA-256 (the default).
    ES256,
    /// Ed25519.
    EdDSA,
    /// HMAC SHA-256 with a shared secret: never published, used for confusion attacks.
    HS256,
}

impl Alg {
    /// The asymmetric algorithms a test authorization server publishes a key for.
    pub const PUBLISHED: [Alg; 4] = [Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA];

    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
        }
    }

    /// True for the RSA algorithms (one RSA key can serve any of them, see
    /// [`TestKey::with_alg`]).
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512
        )
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

/// A key bound to exactly one algorithm (RFC 8725 §3.1), with a `kid`. Cheap to clone.
#[derive(Clone)]
pub struct TestKey {
    alg: Alg,
    kid: String,
    material: Arc<Material>,
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

impl TestKey {
    /// Generates a fresh key for `alg` with a random `kid` such as `es256-3f9a0c12`.
    /// RSA keys are 2048 bits; HS256 gets a random 32-byte secret.
    pub fn generate(alg: Alg) -> Self {
        let material = match alg {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                Material::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA keygen"))
            }
            Alg::ES256 => Material::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC keygen"),
            ),
            Alg::EdDSA => Material::Ed(Ed25519KeyPair::generate().expect("Ed25519 keygen")),
            Alg::HS256 => Material::Hmac(random_bytes(32)),
        };
        let kid = format!(
            "{}-{}",
            alg.as_str().to_ascii_lowercase(),
            hex(&random_bytes(4))
        );
        Self {
            alg,
            kid,
            material: Arc::new(material),
        }
    }

    /// An HS256 key with the given secret, e.g. an RSA public key's PEM bytes for the
    /// RS256→HS256 key-confusion attack (RFC 8725 §2.1). Its `kid` is `hmac`.
    pub fn hmac(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            alg: Alg::HS256,
            kid: "hmac".into(),
            material: Arc::new(Material::Hmac(secret.into())),
        }
    }

    /// Loads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) for `alg`.
    pub fn from_pkcs8_pem(alg: Alg, pem: &str, kid: impl Into<String>) -> Result<Self, String> {
        let der = decode_pem(pem, "PRIVATE KEY").ok_or("no PRIVATE KEY PEM block")?;
        let material = match alg {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                Material::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(|e| e.to_string())?)
            }
            Alg::ES256 => Material::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|e| e.to_string())?,
            ),
            Alg::EdDSA => {
                Material::Ed(Ed25519KeyPair::from_pkcs8(&der).map_err(|e| e.to_string())?)
            }
            Alg::HS256 => return Err("HS256 keys are not PEM; use TestKey::hmac".into()),
        };
        Ok(Self {
            alg,
            kid: kid.into(),
            material: Arc::new(material),
        })
    }

    /// The same key material under another `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self
    }

    /// The same key material (and `kid`) bound to another algorithm of its key type: an RSA key
    /// as RS256, RS384, RS512, PS256, PS384 or PS512. This is the key a JWKS publishes without
    /// `alg`, which a verifier may use with every algorithm of its type.
    ///
    /// # Panics
    /// If `alg` does not fit the key type (e.g. an EC key as RS256).
    pub fn with_alg(mut self, alg: Alg) -> Self {
        let fits = match &*self.material {
            Material::Rsa(_) => alg.is_rsa(),
            Material::Ec(_) => alg == Alg::ES256,
            Material::Ed(_) => alg == Alg::EdDSA,
            Material::Hmac(_) => alg == Alg::HS256,
        };
        assert!(fits, "a {} key cannot sign {alg}", self.alg);
        self.alg = alg;
        self
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs a JWS signing input (`BASE64URL(header) '.' BASE64URL(payload)`), returning the
    /// raw signature bytes in JWS form (ES256: fixed-size `r || s`, RFC 7518 §3.4).
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match (&*self.material, self.alg) {
            (Material::Rsa(k), alg) => {
                let enc: &'static dyn RsaEncoding = match alg {
                    Alg::RS384 => &RSA_PKCS1_SHA384,
                    Alg::RS512 => &RSA_PKCS1_SHA512,
                    Alg::PS256 => &RSA_PSS_SHA256,
                    Alg::PS384 => &RSA_PSS_SHA384,
                    Alg::PS512 => &RSA_PSS_SHA512,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(enc, &rng, input, &mut sig).expect("RSA signing");
                sig
            }
            (Material::Ec(k), _) => k
                .sign(&rng, input)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            (Material::Ed(k), _) => k.sign(input).as_ref().to_vec(),
            (Material::Hmac(secret), _) => {
                hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input)
                    .as_ref()
                    .to_vec()
            }
        }
    }

    /// The public JWK: `kty`, key parameters, `kid`, `use: "sig"`, `alg`. For an HS256 key
    /// this is an `oct` JWK holding the secret (publishing one is itself a hostile case).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &*self.material {
            Material::Rsa(k) => {
                let public = k.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64url(public.modulus().big_endian_without_leading_zero()),
                    "e": b64url(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Material::Ec(k) => {
                let point: EcPublicKeyUncompressedBin<'_> =
                    k.public_key().as_be_bytes().expect("EC point");
                let point = point.as_ref();
                // Uncompressed SEC1 point: 0x04 || x || y.
                json!({"kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..65])})
            }
            Material::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(k.public_key().as_ref())})
            }
            Material::Hmac(secret) => json!({"kty": "oct", "k": b64url(secret)}),
        };
        let obj = jwk.as_object_mut().expect("object");
        obj.insert("kid".into(), json!(self.kid));
        obj.insert("use".into(), json!("sig"));
        obj.insert("alg".into(), json!(self.alg.as_str()));
        jwk
    }

    /// [`Self::public_jwk`] without `alg`, as oidc-provider and Entra publish keys: a verifier
    /// then derives the algorithms from the key type.
    pub fn public_jwk_without_alg(&self) -> Value {
        let mut jwk = self.public_jwk();
        jwk.as_object_mut().expect("object").remove("alg");
        jwk
    }

    /// The public key as DER `SubjectPublicKeyInfo` (the HMAC secret for HS256).
    pub fn public_key_der(&self) -> Vec<u8> {
        let der: Result<PublicKeyX509Der<'static>, _> = match &*self.material {
            Material::Rsa(k) => k.public_key().as_der(),
            Material::Ec(k) => k.public_key().as_der(),
            Material::Ed(k) => k.public_key().as_der(),
            Material::Hmac(secret) => return secret.clone(),
        };
        der.expect("public key DER").as_ref().to_vec()
    }

    /// The public key as PEM `-----BEGIN PUBLIC KEY-----` (SPKI), exactly what a careless
    /// verifier might feed to HMAC in a key-confusion attack.
    pub fn public_key_pem(&self) -> String {
        encode_pem("PUBLIC KEY", &self.public_key_der())
    }

    /// For RSA keys, the PKCS#1 `-----BEGIN RSA PUBLIC KEY-----` form (the other PEM a
    /// key-confusion attacker tries).
    pub fn rsa_public_key_pkcs1_pem(&self) -> Option<String> {
        Some(encode_pem(
            "RSA PUBLIC KEY",
            &self.rsa_public_key_pkcs1_der()?,
        ))
    }

    /// For RSA keys, the PKCS#1 `RSAPublicKey` DER bytes (what a naive HS256 verifier might use
    /// as the "secret").
    pub fn rsa_public_key_pkcs1_der(&self) -> Option<Vec<u8>> {
        match &*self.material {
            Material::Rsa(k) => Some(k.public_key().as_ref().to_vec()),
            _ => None,
        }
    }

    /// The private key as PKCS#8 PEM (`None` for HS256).
    pub fn private_key_pkcs8_pem(&self) -> Option<String> {
        let der: Vec<u8> = match &*self.material {
            Material::Rsa(k) => AsDer::<Pkcs8V1Der<'static>>::as_der(k)
                .ok()?
                .as_ref()
                .to_vec(),
            Material::Ec(k) => k.to_pkcs8v1().ok()?.as_ref().to_vec(),
            Material::Ed(k) => k.to_pkcs8v1().ok()?.as_ref().to_vec(),
            Material::Hmac(_) => return None,
        };
        Some(encode_pem("PRIVATE KEY", &der))
    }
}

/// A JWK a verifier must skip, not choke on: an RSA **encryption** key (`use: "enc"`,
/// `alg: "RSA-OAEP"`) as Keycloak publishes next to its signing keys.
pub fn junk_enc_rsa_jwk() -> Value {
    let mut jwk = TestKey::generate(Alg::RS256).public_jwk();
    let obj = jwk.as_object_mut().expect("object");
    obj.insert(
        "kid".into(),
        json!(format!("enc-{}", hex(&random_bytes(4)))),
    );
    obj.insert("use".into(), json!("enc"));
    obj.insert("alg".into(), json!("RSA-OAEP"));
    jwk
}

/// A JWK with a key type no verifier knows; a verifier must skip it rather than reject the set.
pub fn unknown_kty_jwk() -> Value {
    json!({"kty": "XYZ", "kid": "unknown-kty", "use": "sig", "crv": "Curve9000", "x": "AAAA"})
}

/// Base64url without padding (RFC 7515 §2), the encoding of every JWS segment.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    aws_lc_rs::rand::fill(&mut v).expect("system RNG");
    v
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn decode_pem(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}
