//! An OIDC issuer played by a test: an ES256 key, its key set, and signed tokens.

use std::path::Path;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

pub const ISSUER: &str = "https://idp.example";
pub const AUDIENCE: &str = "ward";

pub struct Issuer {
    key: EcdsaKeyPair,
}

impl Default for Issuer {
    fn default() -> Self {
        Self::new()
    }
}

impl Issuer {
    pub fn new() -> Issuer {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key generation");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("generated key parses");
        Issuer { key }
    }

    /// The key set, with one key `k1`.
    pub fn jwks(&self) -> String {
        let point = self.key.public_key().as_ref();
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }]})
        .to_string()
    }

    /// Makes `data_dir`'s Ward trust this issuer (key set file and `[web.oidc]`).
    pub fn configure(&self, data_dir: &Path) {
        std::fs::write(data_dir.join("issuer.jwks"), self.jwks()).expect("write key set");
        let path = data_dir.join("ward.toml");
        let config = std::fs::read_to_string(&path).expect("read ward.toml");
        std::fs::write(
            &path,
            format!(
                "{config}\n[web.oidc]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"issuer.jwks\"\n"
            ),
        )
        .expect("write ward.toml");
    }

    /// A token with this header and these claims, signed with the issuer's key.
    pub fn sign(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self
            .key
            .sign(&rng, signing_input.as_bytes())
            .expect("signing");
        format!("{signing_input}.{}", B64.encode(signature.as_ref()))
    }

    /// A valid token for `subject` with Ward role `role`, expiring `lifetime_secs` from now
    /// (in the past when negative).
    pub fn token(&self, subject: &str, role: &str, lifetime_secs: i64) -> String {
        self.sign(&header(), &claims(subject, role, AUDIENCE, lifetime_secs))
    }
}

pub fn header() -> serde_json::Value {
    serde_json::json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})
}

pub fn claims(subject: &str, role: &str, audience: &str, lifetime_secs: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let exp = now.saturating_add_signed(lifetime_secs);
    serde_json::json!({"iss": ISSUER, "aud": audience, "sub": subject, "exp": exp,
                       "ward_role": role})
}

/// Base64url without padding, for tests that forge tokens by hand.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}
