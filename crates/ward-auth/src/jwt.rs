//! Verification of JSON Web Tokens (RFC 7519) signed by an identity provider: OAuth 2.0 bearer
//! tokens on the web API (IHE IUA) and JWT user identities on DIMSE (PS3.7 D.3.3.7, type 5).
//!
//! Only public-key signatures are accepted — RS256/384/512, PS256/384/512, ES256, ES384 and
//! EdDSA (Ed25519) — checked with aws-lc-rs, the provider rustls already uses here. HMAC
//! algorithms are refused outright: Ward never shares a secret with the provider, and
//! accepting them is how a public key gets used as an HMAC secret ("key confusion").
//!
//! The rules, all of which refuse rather than guess:
//!
//! - A token longer than [`MAX_TOKEN_LEN`] is refused before anything is decoded.
//! - The header's `alg` must be one of the above and allowed for the chosen key: by the key's
//!   own `alg` when the key set gives one, otherwise by its type and curve. Headers with `crit`
//!   are refused (no extension is understood); a `typ`, when present, must be `JWT` or
//!   `at+jwt` (RFC 9068), so that other kinds of JWT (logout tokens, DPoP proofs) do not pass
//!   as access tokens. Keys named in the token (`jwk`, `jku`, `x5u`, `x5c`) are never used.
//! - Key choice: a token with a `kid` must name a key of the set; a token without one is
//!   accepted only when the set holds a single usable key.
//! - The signature is checked before any claim is looked at. Then `iss` must equal the
//!   configured issuer, `aud` (a string or an array) must contain the configured audience,
//!   `exp` must be present and in the future, `nbf` (when present) in the past, both with the
//!   configured leeway, and `sub` must be a non-empty string.
//! - The role comes from the configured claim (default `ward_role`), then from `roles`; each
//!   may be a string or an array of strings, and the first value that names a Ward role wins.
//!   A token with no such value is still authentic but carries no role; what it may then do
//!   is the caller's decision.
//!
//! Errors carry no part of the token, so they can be logged.

use std::collections::HashSet;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};
use ward_types::Role;

/// Tokens longer than this are refused unread (an access token is rarely over 2 KiB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Key sets longer than this are refused unread.
pub const MAX_JWKS_LEN: usize = 1024 * 1024;
/// The claim Ward reads its role from unless configured otherwise.
pub const DEFAULT_ROLE_CLAIM: &str = "ward_role";
/// Allowed clock difference with the provider unless configured otherwise.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// RSA keys shorter than this are refused when the key set is loaded (RFC 7518 3.3).
const MIN_RSA_MODULUS_BITS: usize = 2048;
/// The largest modulus aws-lc-rs verifies with.
const MAX_RSA_MODULUS_BITS: usize = 8192;

/// A JWS algorithm Ward accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
    ];

    /// The `alg` value (RFC 7518, RFC 8037).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Exact, case-sensitive match: `alg` values are case-sensitive (RFC 7515 4.1.1).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::Es256 | Algorithm::Es384 | Algorithm::EdDsa => return None,
        })
    }
}

/// What a token must say to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The `iss` value, compared exactly.
    pub issuer: String,
    /// A value `aud` must be or contain.
    pub audience: String,
    /// Allowed clock difference, applied to `exp` and `nbf`.
    pub leeway_secs: u64,
    /// The claim holding Ward's role.
    pub role_claim: String,
}

impl JwtConfig {
    /// The default leeway ([`DEFAULT_LEEWAY_SECS`]) and role claim ([`DEFAULT_ROLE_CLAIM`]).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> JwtConfig {
        JwtConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            role_claim: DEFAULT_ROLE_CLAIM.to_owned(),
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`.
    pub subject: String,
    /// The first Ward role among the role claims, if any.
    pub role: Option<Role>,
    /// The `kid` of the key that verified the signature, when the key set names it.
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    /// `exp`, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Why a token was refused. No variant carries token content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    #[error("token is not a well-formed signed JWT")]
    Malformed,
    #[error("token algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("token header has a critical extension")]
    CriticalHeader,
    #[error("token type is not an access token")]
    WrongType,
    #[error("token has no key id and the key set has several keys")]
    KeyIdRequired,
    #[error("token key id is not in the key set")]
    UnknownKeyId,
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token issuer is not the configured one")]
    WrongIssuer,
    #[error("token audience does not include Ward")]
    WrongAudience,
    #[error("token has no expiry")]
    MissingExpiry,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token has no subject")]
    MissingSubject,
}

/// Why a key set could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("key set longer than {MAX_JWKS_LEN} bytes")]
    TooLarge,
    #[error("key set is not a JSON object with a \"keys\" array")]
    NotAKeySet,
    #[error("key {index} of the key set is unusable: {reason}")]
    InvalidKey { index: usize, reason: &'static str },
    #[error("two keys of the key set have the same key id")]
    DuplicateKeyId,
    #[error("key set has no public signature key of a supported type")]
    NoUsableKeys,
}

/// Checks tokens against a provider's key set. Cheap to share between threads.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    config: JwtConfig,
    keys: Vec<VerifyingKey>,
}

#[derive(Debug, Clone)]
struct VerifyingKey {
    kid: Option<String>,
    /// Each algorithm the key may verify, with the key parsed for it.
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl JwtVerifier {
    /// Loads the public signature keys of a JWKS document (RFC 7517 5). Keys for encryption
    /// (`use` other than `sig`, or `key_ops` without `verify`), symmetric keys and key types,
    /// curves or algorithms Ward does not verify with are skipped; a key of a supported type
    /// that is malformed, too short, inconsistent with its `alg`, or carries private material
    /// is an error, as is a repeated `kid` or a set left with no key.
    pub fn new(jwks: &str, config: JwtConfig) -> Result<JwtVerifier, JwksError> {
        if jwks.len() > MAX_JWKS_LEN {
            return Err(JwksError::TooLarge);
        }
        let doc: Value = serde_json::from_str(jwks).map_err(|_| JwksError::NotAKeySet)?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAKeySet)?;
        let mut keys = Vec::new();
        let mut kids = HashSet::new();
        for (index, entry) in entries.iter().enumerate() {
            let jwk = entry.as_object().ok_or(JwksError::InvalidKey {
                index,
                reason: "not a JSON object",
            })?;
            let Some(key) =
                parse_jwk(jwk).map_err(|reason| JwksError::InvalidKey { index, reason })?
            else {
                continue;
            };
            if let Some(kid) = &key.kid {
                if !kids.insert(kid.clone()) {
                    return Err(JwksError::DuplicateKeyId);
                }
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(JwtVerifier { config, keys })
    }

    /// The number of keys tokens may be verified with.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies `token` (the compact serialization, without any `Bearer ` prefix) at time
    /// `now_unix` (seconds since the Unix epoch).
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            // Also a JWE (five parts): Ward accepts only signed tokens.
            return Err(JwtError::Malformed);
        };

        let header = parse_header(&decode_part(header_b64)?)?;
        let algorithm = Algorithm::from_name(&header.alg).ok_or(JwtError::UnsupportedAlgorithm)?;
        if header.crit.is_some() {
            return Err(JwtError::CriticalHeader);
        }
        if let Some(typ) = &header.typ {
            // RFC 7515 4.1.9: "application/" may be left out, and media types are
            // case-insensitive.
            let typ = typ.to_ascii_lowercase();
            let typ = typ.strip_prefix("application/").unwrap_or(&typ);
            if typ != "jwt" && typ != "at+jwt" {
                return Err(JwtError::WrongType);
            }
        }

        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .ok_or(JwtError::UnknownKeyId)?,
            None => match self.keys.as_slice() {
                [only] => only,
                _ => return Err(JwtError::KeyIdRequired),
            },
        };
        let verifier = key
            .verifiers
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, v)| v)
            .ok_or(JwtError::AlgorithmMismatch)?;
        let signature = decode_part(signature_b64)?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        verifier
            .verify_sig(signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;

        let claims: Map<String, Value> =
            serde_json::from_slice(&decode_part(payload_b64)?).map_err(|_| JwtError::Malformed)?;
        let expires_at = self.check_claims(&claims, now_unix)?;
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(JwtError::MissingSubject),
        };
        Ok(Claims {
            subject,
            role: self.role(&claims),
            kid: key.kid.clone(),
            algorithm,
            expires_at,
        })
    }

    /// Issuer, audience and validity period; the expiry when they pass.
    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<u64, JwtError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(JwtError::WrongIssuer);
        }
        let audience = self.config.audience.as_str();
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !audience_ok {
            return Err(JwtError::WrongAudience);
        }
        let leeway = self.config.leeway_secs;
        let exp = numeric_date(claims.get("exp"))?.ok_or(JwtError::MissingExpiry)?;
        // RFC 7519 4.1.4: not accepted "on or after" the expiry.
        if now >= exp.saturating_add(leeway) {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = numeric_date(claims.get("nbf"))? {
            if now.saturating_add(leeway) < nbf {
                return Err(JwtError::NotYetValid);
            }
        }
        Ok(exp)
    }

    fn role(&self, claims: &Map<String, Value>) -> Option<Role> {
        [self.config.role_claim.as_str(), "roles"]
            .into_iter()
            .filter_map(|name| claims.get(name))
            .flat_map(|value| match value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(values) => values.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            })
            .find_map(|name| name.parse::<Role>().ok())
    }
}

/// The JOSE header fields Ward looks at; others are ignored. A repeated field is an error
/// (serde refuses duplicates for named fields), so two parsers cannot read different values.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

fn parse_header(json: &[u8]) -> Result<Header, JwtError> {
    // serde would also fill a struct from a JSON array; a JOSE header is an object.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(JwtError::Malformed);
    }
    serde_json::from_slice(json).map_err(|_| JwtError::Malformed)
}

/// base64url without padding, as JWS requires; non-zero trailing bits are refused, so each
/// token has exactly one encoding.
fn decode_part(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)
}

/// A NumericDate claim as whole seconds: absent is `None`, a number before the epoch is 0,
/// anything else (a string, NaN) is malformed.
fn numeric_date(value: Option<&Value>) -> Result<Option<u64>, JwtError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Value::Number(n) = value else {
        return Err(JwtError::Malformed);
    };
    if let Some(secs) = n.as_u64() {
        return Ok(Some(secs));
    }
    match n.as_f64() {
        // Saturating casts: fractions are dropped, far futures become u64::MAX.
        Some(secs) if secs.is_finite() => Ok(Some(secs.max(0.0) as u64)),
        _ => Err(JwtError::Malformed),
    }
}

/// One JWK: `Ok(None)` when it is not a public signature key of a supported kind.
fn parse_jwk(jwk: &Map<String, Value>) -> Result<Option<VerifyingKey>, &'static str> {
    let text = |name: &str| -> Result<Option<&str>, &'static str> {
        match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err("a member that must be a string is not"),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, &'static str> {
        let value = text(name)?.ok_or("a required member is missing")?;
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| "a member is not base64url")
    };

    if text("use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops is not an array")?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Ok(None);
        }
    }
    let declared = match text("alg")? {
        None => None,
        Some(name) => match Algorithm::from_name(name) {
            Some(alg) => Some(alg),
            // An algorithm Ward does not verify with (HS256, RSA-OAEP, ES512, ...).
            None => return Ok(None),
        },
    };
    let kid = text("kid")?.map(str::to_owned);

    let material = match text("kty")? {
        Some("RSA") => {
            if jwk.contains_key("d") || jwk.contains_key("p") {
                return Err("private key material in the key set");
            }
            let n = strip_leading_zeros(bytes("n")?);
            let e = strip_leading_zeros(bytes("e")?);
            let bits =
                (n.len() * 8).saturating_sub(n.first().map_or(0, |b| b.leading_zeros() as usize));
            if bits < MIN_RSA_MODULUS_BITS {
                return Err("RSA modulus shorter than 2048 bits");
            }
            if bits > MAX_RSA_MODULUS_BITS {
                return Err("RSA modulus longer than 8192 bits");
            }
            KeyMaterial::Rsa { n, e }
        }
        Some("EC") => {
            if jwk.contains_key("d") {
                return Err("private key material in the key set");
            }
            let (alg, field_len) = match text("crv")? {
                Some("P-256") => (Algorithm::Es256, 32),
                Some("P-384") => (Algorithm::Es384, 48),
                _ => return Ok(None),
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            // RFC 7518 6.2.1.2: the coordinates are the full field length.
            if x.len() != field_len || y.len() != field_len {
                return Err("EC coordinates of the wrong length");
            }
            // The uncompressed SEC1 point.
            KeyMaterial::Ec {
                alg,
                point: [&[0x04][..], &x, &y].concat(),
            }
        }
        Some("OKP") => {
            if jwk.contains_key("d") {
                return Err("private key material in the key set");
            }
            if text("crv")? != Some("Ed25519") {
                return Ok(None);
            }
            let x = bytes("x")?;
            if x.len() != signature::ED25519_PUBLIC_KEY_LEN {
                return Err("Ed25519 key of the wrong length");
            }
            KeyMaterial::Ed25519(x)
        }
        // Symmetric ("oct") keys and unknown types.
        _ => return Ok(None),
    };

    let possible = material.algorithms();
    let algorithms = match declared {
        Some(alg) if possible.contains(&alg) => vec![alg],
        Some(_) => return Err("alg does not fit the key type or curve"),
        None => possible.to_vec(),
    };
    let verifiers = algorithms
        .into_iter()
        .map(|alg| material.parse(alg).map(|v| (alg, v)))
        .collect::<Result<_, _>>()?;
    Ok(Some(VerifyingKey { kid, verifiers }))
}

/// The public part of a key, before it is parsed for each algorithm it may verify.
enum KeyMaterial {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        alg: Algorithm,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

impl KeyMaterial {
    /// What the key type allows when the key set does not pin an algorithm.
    fn algorithms(&self) -> &'static [Algorithm] {
        match self {
            KeyMaterial::Rsa { .. } => &[
                Algorithm::Rs256,
                Algorithm::Rs384,
                Algorithm::Rs512,
                Algorithm::Ps256,
                Algorithm::Ps384,
                Algorithm::Ps512,
            ],
            KeyMaterial::Ec {
                alg: Algorithm::Es384,
                ..
            } => &[Algorithm::Es384],
            KeyMaterial::Ec { .. } => &[Algorithm::Es256],
            KeyMaterial::Ed25519(_) => &[Algorithm::EdDsa],
        }
    }

    /// The key parsed for `alg`, which must be one of [`KeyMaterial::algorithms`].
    fn parse(&self, alg: Algorithm) -> Result<ParsedPublicKey, &'static str> {
        match (self, alg.rsa_parameters()) {
            (KeyMaterial::Rsa { n, e }, Some(params)) => RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .to_parsed_public_key(params)
            .map_err(|_| "not a valid RSA public key"),
            (KeyMaterial::Ec { point, .. }, None) => {
                let verification = if alg == Algorithm::Es384 {
                    &signature::ECDSA_P384_SHA384_FIXED
                } else {
                    &signature::ECDSA_P256_SHA256_FIXED
                };
                ParsedPublicKey::new(verification, point).map_err(|_| "EC point not on the curve")
            }
            (KeyMaterial::Ed25519(x), None) => {
                ParsedPublicKey::new(&signature::ED25519, x).map_err(|_| "not a valid Ed25519 key")
            }
            _ => Err("alg does not fit the key type"),
        }
    }
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
    use serde_json::json;

    const ISSUER: &str = "https://idp.example";
    const AUDIENCE: &str = "ward";
    const NOW: u64 = 1_700_000_000;

    enum Private {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair, &'static str),
        Ed(Ed25519KeyPair),
    }

    /// A signing key the tests play the identity provider with.
    struct Signer {
        key: Private,
        kid: &'static str,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    impl Signer {
        fn rsa(kid: &'static str) -> Signer {
            let key = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key");
            Signer {
                key: Private::Rsa(key),
                kid,
            }
        }

        fn p256(kid: &'static str) -> Signer {
            let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("P-256 key");
            Signer {
                key: Private::Ec(key, "P-256"),
                kid,
            }
        }

        fn p384(kid: &'static str) -> Signer {
            let key = EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                .expect("P-384 key");
            Signer {
                key: Private::Ec(key, "P-384"),
                kid,
            }
        }

        fn ed25519(kid: &'static str) -> Signer {
            Signer {
                key: Private::Ed(Ed25519KeyPair::generate().expect("Ed25519 key")),
                kid,
            }
        }

        /// The public JWK, with a `kid`.
        fn jwk(&self) -> Value {
            match &self.key {
                Private::Rsa(k) => json!({
                    "kty": "RSA",
                    "kid": self.kid,
                    "n": b64(k.public_key().modulus().big_endian_without_leading_zero()),
                    "e": b64(k.public_key().exponent().big_endian_without_leading_zero()),
                }),
                Private::Ec(k, crv) => {
                    let point = k.public_key().as_ref();
                    let half = (point.len() - 1) / 2;
                    json!({
                        "kty": "EC",
                        "kid": self.kid,
                        "crv": crv,
                        "x": b64(&point[1..1 + half]),
                        "y": b64(&point[1 + half..]),
                    })
                }
                Private::Ed(k) => json!({
                    "kty": "OKP",
                    "kid": self.kid,
                    "crv": "Ed25519",
                    "x": b64(k.public_key().as_ref()),
                }),
            }
        }

        fn sign_raw(&self, alg: &str, message: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match &self.key {
                Private::Rsa(k) => {
                    let encoding: &dyn signature::RsaEncoding = match alg {
                        "RS256" => &signature::RSA_PKCS1_SHA256,
                        "RS384" => &signature::RSA_PKCS1_SHA384,
                        "RS512" => &signature::RSA_PKCS1_SHA512,
                        "PS256" => &signature::RSA_PSS_SHA256,
                        "PS384" => &signature::RSA_PSS_SHA384,
                        _ => &signature::RSA_PSS_SHA512,
                    };
                    let mut sig = vec![0; k.public_modulus_len()];
                    k.sign(encoding, &rng, message, &mut sig).expect("signs");
                    sig
                }
                Private::Ec(k, _) => k.sign(&rng, message).expect("signs").as_ref().to_vec(),
                Private::Ed(k) => k.sign(message).as_ref().to_vec(),
            }
        }

        /// A compact JWS over `header` and `claims`.
        fn sign_with(&self, header: &Value, claims: &Value) -> String {
            let alg = header["alg"].as_str().unwrap_or("");
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = self.sign_raw(alg, input.as_bytes());
            format!("{input}.{}", b64(&sig))
        }

        fn sign(&self, alg: &str, claims: &Value) -> String {
            self.sign_with(&json!({"alg": alg, "kid": self.kid, "typ": "JWT"}), claims)
        }
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "exp": NOW + 300,
            "nbf": NOW - 10,
            "iat": NOW - 10,
            "ward_role": "clinician",
        })
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        base[key] = value;
        base
    }

    fn without(mut base: Value, key: &str) -> Value {
        base.as_object_mut().expect("object").remove(key);
        base
    }

    fn jwks(keys: &[Value]) -> String {
        json!({ "keys": keys }).to_string()
    }

    fn verifier(keys: &[Value]) -> JwtVerifier {
        JwtVerifier::new(&jwks(keys), JwtConfig::new(ISSUER, AUDIENCE)).expect("key set loads")
    }

    #[test]
    fn accepts_every_supported_algorithm() {
        let rsa = Signer::rsa("rsa");
        let p256 = Signer::p256("p256");
        let p384 = Signer::p384("p384");
        let ed = Signer::ed25519("ed");
        let v = verifier(&[rsa.jwk(), p256.jwk(), p384.jwk(), ed.jwk()]);
        assert_eq!(v.key_count(), 4);
        let cases = [
            (&rsa, Algorithm::Rs256),
            (&rsa, Algorithm::Rs384),
            (&rsa, Algorithm::Rs512),
            (&rsa, Algorithm::Ps256),
            (&rsa, Algorithm::Ps384),
            (&rsa, Algorithm::Ps512),
            (&p256, Algorithm::Es256),
            (&p384, Algorithm::Es384),
            (&ed, Algorithm::EdDsa),
        ];
        for (signer, alg) in cases {
            let token = signer.sign(alg.name(), &claims());
            assert_eq!(
                v.verify(&token, NOW),
                Ok(Claims {
                    subject: "alice".into(),
                    role: Some(Role::Clinician),
                    kid: Some(signer.kid.into()),
                    algorithm: alg,
                    expires_at: NOW + 300,
                }),
                "{}",
                alg.name()
            );
        }
    }

    #[test]
    fn refuses_alg_none() {
        let rsa = Signer::rsa("rsa");
        let v = verifier(&[rsa.jwk()]);
        let body = format!(
            "{}.{}",
            b64(json!({"alg": "none", "kid": "rsa"}).to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        for token in [format!("{body}."), format!("{body}.AAAA")] {
            assert_eq!(v.verify(&token, NOW), Err(JwtError::UnsupportedAlgorithm));
        }
        for alg in ["None", "NONE", "rs256", ""] {
            let token = rsa.sign_with(&json!({"alg": alg, "kid": "rsa"}), &claims());
            assert_eq!(
                v.verify(&token, NOW),
                Err(JwtError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
    }

    /// The classic key confusion: HMAC with the provider's public key as the secret.
    #[test]
    fn refuses_hmac_made_with_the_public_key() {
        let rsa = Signer::rsa("rsa");
        let jwk = rsa.jwk();
        let v = verifier(std::slice::from_ref(&jwk));
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap_or_default())
            .expect("modulus");
        for secret in [n, jwks(&[jwk]).into_bytes()] {
            for (alg, hmac) in [
                ("HS256", aws_lc_rs::hmac::HMAC_SHA256),
                ("HS384", aws_lc_rs::hmac::HMAC_SHA384),
                ("HS512", aws_lc_rs::hmac::HMAC_SHA512),
            ] {
                let input = format!(
                    "{}.{}",
                    b64(json!({"alg": alg, "kid": "rsa"}).to_string().as_bytes()),
                    b64(claims().to_string().as_bytes())
                );
                let key = aws_lc_rs::hmac::Key::new(hmac, &secret);
                let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
                let token = format!("{input}.{}", b64(tag.as_ref()));
                assert_eq!(v.verify(&token, NOW), Err(JwtError::UnsupportedAlgorithm));
            }
        }
    }

    #[test]
    fn the_algorithm_must_fit_the_key_type() {
        let rsa = Signer::rsa("rsa");
        let p256 = Signer::p256("p256");
        let ed = Signer::ed25519("ed");
        let v = verifier(&[rsa.jwk(), p256.jwk(), ed.jwk()]);
        // Each signed properly by a key of the header's algorithm, but naming another key.
        let cases = [
            (&p256, "ES256", "rsa"),
            (&ed, "EdDSA", "rsa"),
            (&rsa, "RS256", "p256"),
            (&p256, "ES384", "p256"),
            (&rsa, "PS256", "ed"),
            (&ed, "EdDSA", "p256"),
        ];
        for (signer, alg, kid) in cases {
            let token = signer.sign_with(&json!({"alg": alg, "kid": kid}), &claims());
            assert_eq!(
                v.verify(&token, NOW),
                Err(JwtError::AlgorithmMismatch),
                "{alg} {kid}"
            );
        }
    }

    #[test]
    fn a_key_pinned_to_an_algorithm_verifies_only_that_one() {
        let rsa = Signer::rsa("rsa");
        let jwk = with(rsa.jwk(), "alg", json!("RS256"));
        let v = verifier(&[jwk]);
        assert!(v.verify(&rsa.sign("RS256", &claims()), NOW).is_ok());
        for alg in ["PS256", "RS512"] {
            assert_eq!(
                v.verify(&rsa.sign(alg, &claims()), NOW),
                Err(JwtError::AlgorithmMismatch)
            );
        }
    }

    #[test]
    fn key_ids_choose_the_key() {
        let a = Signer::p256("a");
        let b = Signer::ed25519("b");
        let two = verifier(&[a.jwk(), b.jwk()]);
        assert!(two.verify(&a.sign("ES256", &claims()), NOW).is_ok());
        assert!(two.verify(&b.sign("EdDSA", &claims()), NOW).is_ok());
        let unknown = a.sign_with(&json!({"alg": "ES256", "kid": "c"}), &claims());
        assert_eq!(two.verify(&unknown, NOW), Err(JwtError::UnknownKeyId));
        let no_kid = a.sign_with(&json!({"alg": "ES256"}), &claims());
        assert_eq!(two.verify(&no_kid, NOW), Err(JwtError::KeyIdRequired));

        // With a single key, a token may leave the kid out, but may not name another.
        let one = verifier(&[a.jwk()]);
        assert!(one.verify(&no_kid, NOW).is_ok());
        assert_eq!(one.verify(&unknown, NOW), Err(JwtError::UnknownKeyId));
        // A key without a kid is found only by a token without one.
        let anonymous = verifier(&[without(a.jwk(), "kid")]);
        let claims = anonymous.verify(&no_kid, NOW).expect("verifies");
        assert_eq!(claims.kid, None);
        assert_eq!(
            anonymous.verify(&a.sign("ES256", &super::tests::claims()), NOW),
            Err(JwtError::UnknownKeyId)
        );
    }

    #[test]
    fn keys_not_for_signatures_are_never_used() {
        let enc = Signer::rsa("enc");
        let sig = Signer::p256("sig");
        let v = verifier(&[
            with(enc.jwk(), "use", json!("enc")),
            sig.jwk(),
            with(Signer::ed25519("ops").jwk(), "key_ops", json!(["encrypt"])),
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            with(Signer::rsa("oaep").jwk(), "alg", json!("RSA-OAEP")),
        ]);
        assert_eq!(v.key_count(), 1);
        assert_eq!(
            v.verify(&enc.sign("RS256", &claims()), NOW),
            Err(JwtError::UnknownKeyId)
        );
        assert!(v.verify(&sig.sign("ES256", &claims()), NOW).is_ok());
        let marked = verifier(&[with(
            with(sig.jwk(), "use", json!("sig")),
            "key_ops",
            json!(["verify"]),
        )]);
        assert!(marked.verify(&sig.sign("ES256", &claims()), NOW).is_ok());
        assert_eq!(
            JwtVerifier::new(
                &jwks(&[with(enc.jwk(), "use", json!("enc"))]),
                JwtConfig::new(ISSUER, AUDIENCE)
            )
            .map(|_| ()),
            Err(JwksError::NoUsableKeys)
        );
    }

    #[test]
    fn a_key_in_the_token_itself_is_ignored() {
        let real = Signer::p256("real");
        let attacker = Signer::p256("real");
        let v = verifier(&[real.jwk()]);
        let header = json!({"alg": "ES256", "kid": "real", "jwk": attacker.jwk()});
        let token = attacker.sign_with(&header, &claims());
        assert_eq!(v.verify(&token, NOW), Err(JwtError::BadSignature));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let signer = Signer::rsa("rsa");
        let v = verifier(&[signer.jwk()]);
        let token = signer.sign("RS256", &claims());
        let parts: Vec<&str> = token.split('.').collect();

        let admin = with(claims(), "ward_role", json!("administrator"));
        let payload = b64(admin.to_string().as_bytes());
        let swapped = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(v.verify(&swapped, NOW), Err(JwtError::BadSignature));

        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
        sig[10] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(v.verify(&flipped, NOW), Err(JwtError::BadSignature));

        let empty = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(v.verify(&empty, NOW), Err(JwtError::BadSignature));

        // Signed by another key under the same kid.
        let other = Signer::rsa("rsa");
        assert_eq!(
            v.verify(&other.sign("RS256", &claims()), NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn time_claims_are_checked_with_leeway() {
        let signer = Signer::ed25519("ed");
        let v = verifier(&[signer.jwk()]);
        let leeway = DEFAULT_LEEWAY_SECS;
        let exp = signer.sign("EdDSA", &with(claims(), "exp", json!(NOW)));
        assert!(v.verify(&exp, NOW + leeway - 1).is_ok());
        assert_eq!(v.verify(&exp, NOW + leeway), Err(JwtError::Expired));
        assert_eq!(v.verify(&exp, NOW + 100_000), Err(JwtError::Expired));

        let nbf = signer.sign("EdDSA", &with(claims(), "nbf", json!(NOW + 100)));
        assert_eq!(
            v.verify(&nbf, NOW + 100 - leeway - 1),
            Err(JwtError::NotYetValid)
        );
        assert!(v.verify(&nbf, NOW + 100 - leeway).is_ok());

        let no_exp = signer.sign("EdDSA", &without(claims(), "exp"));
        assert_eq!(v.verify(&no_exp, NOW), Err(JwtError::MissingExpiry));
        let text_exp = signer.sign("EdDSA", &with(claims(), "exp", json!("never")));
        assert_eq!(v.verify(&text_exp, NOW), Err(JwtError::Malformed));
        let fractional = signer.sign("EdDSA", &with(claims(), "exp", json!(NOW as f64 + 0.5)));
        assert_eq!(v.verify(&fractional, NOW).map(|c| c.expires_at), Ok(NOW));
        let negative = signer.sign("EdDSA", &with(claims(), "exp", json!(-5)));
        assert_eq!(v.verify(&negative, NOW), Err(JwtError::Expired));

        let strict = JwtVerifier::new(
            &jwks(&[signer.jwk()]),
            JwtConfig {
                leeway_secs: 0,
                ..JwtConfig::new(ISSUER, AUDIENCE)
            },
        )
        .expect("loads");
        assert_eq!(strict.verify(&exp, NOW), Err(JwtError::Expired));
        assert!(strict.verify(&exp, NOW - 1).is_ok());
    }

    #[test]
    fn issuer_audience_and_subject_must_match() {
        let signer = Signer::p256("p");
        let v = verifier(&[signer.jwk()]);
        let check = |claims: Value| v.verify(&signer.sign("ES256", &claims), NOW);
        assert_eq!(
            check(with(claims(), "iss", json!("https://evil.example"))),
            Err(JwtError::WrongIssuer)
        );
        assert_eq!(
            check(with(claims(), "iss", json!(format!("{ISSUER}/")))),
            Err(JwtError::WrongIssuer)
        );
        assert_eq!(check(without(claims(), "iss")), Err(JwtError::WrongIssuer));
        assert_eq!(
            check(with(claims(), "aud", json!("other"))),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            check(with(claims(), "aud", json!(["a", "b"]))),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            check(with(claims(), "aud", json!([{"ward": 1}]))),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            check(without(claims(), "aud")),
            Err(JwtError::WrongAudience)
        );
        assert!(check(with(claims(), "aud", json!(["other", AUDIENCE]))).is_ok());
        assert_eq!(
            check(without(claims(), "sub")),
            Err(JwtError::MissingSubject)
        );
        assert_eq!(
            check(with(claims(), "sub", json!(""))),
            Err(JwtError::MissingSubject)
        );
        assert_eq!(
            check(with(claims(), "sub", json!(7))),
            Err(JwtError::MissingSubject)
        );
    }

    #[test]
    fn roles_come_from_the_configured_claim_then_roles() {
        let signer = Signer::ed25519("ed");
        let v = verifier(&[signer.jwk()]);
        let role = |claims: Value| {
            v.verify(&signer.sign("EdDSA", &claims), NOW)
                .map(|c| c.role)
        };
        assert_eq!(role(claims()), Ok(Some(Role::Clinician)));
        assert_eq!(
            role(with(claims(), "ward_role", json!("Administrator"))),
            Ok(Some(Role::Administrator))
        );
        assert_eq!(
            role(with(
                claims(),
                "ward_role",
                json!(["viewer", "auditor", "administrator"])
            )),
            Ok(Some(Role::Auditor))
        );
        let roles_only = with(
            without(claims(), "ward_role"),
            "roles",
            json!(["offline_access", "modality"]),
        );
        assert_eq!(role(roles_only.clone()), Ok(Some(Role::Modality)));
        let both = with(roles_only, "ward_role", json!("unknown"));
        assert_eq!(role(both), Ok(Some(Role::Modality)));
        assert_eq!(
            role(with(claims(), "ward_role", json!("superuser"))),
            Ok(None)
        );
        assert_eq!(role(without(claims(), "ward_role")), Ok(None));
        assert_eq!(role(with(claims(), "ward_role", json!(3))), Ok(None));

        let custom = JwtVerifier::new(
            &jwks(&[signer.jwk()]),
            JwtConfig {
                role_claim: "pacs_role".into(),
                ..JwtConfig::new(ISSUER, AUDIENCE)
            },
        )
        .expect("loads");
        let token = signer.sign("EdDSA", &with(claims(), "pacs_role", json!("auditor")));
        assert_eq!(
            custom.verify(&token, NOW).map(|c| c.role),
            Ok(Some(Role::Auditor))
        );
        let token = signer.sign("EdDSA", &claims());
        assert_eq!(custom.verify(&token, NOW).map(|c| c.role), Ok(None));
    }

    #[test]
    fn header_extensions_and_other_token_types_are_refused() {
        let signer = Signer::p256("p");
        let v = verifier(&[signer.jwk()]);
        let header = |extra: Value| {
            let mut h = json!({"alg": "ES256", "kid": "p"});
            if let (Some(h), Some(extra)) = (h.as_object_mut(), extra.as_object()) {
                h.extend(extra.clone());
            }
            signer.sign_with(&h, &claims())
        };
        assert_eq!(
            v.verify(&header(json!({"crit": ["exp"]})), NOW),
            Err(JwtError::CriticalHeader)
        );
        for typ in ["dpop+jwt", "logout+jwt", "JWE"] {
            assert_eq!(
                v.verify(&header(json!({"typ": typ})), NOW),
                Err(JwtError::WrongType)
            );
        }
        for typ in ["JWT", "jwt", "at+jwt", "application/at+jwt"] {
            assert!(v.verify(&header(json!({"typ": typ})), NOW).is_ok(), "{typ}");
        }
        assert!(v.verify(&header(json!({})), NOW).is_ok());
    }

    #[test]
    fn malformed_and_oversized_tokens_are_refused() {
        let signer = Signer::p256("p");
        let v = verifier(&[signer.jwk()]);
        let token = signer.sign("ES256", &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let header = |text: &str| format!("{}.{}.{}", b64(text.as_bytes()), parts[1], parts[2]);
        let cases = [
            String::new(),
            "..".to_owned(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{token}.extra"),
            format!("{token}.a.b"),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", parts[0].replace('e', "+"), parts[1], parts[2]),
            header("not json"),
            header("[\"ES256\"]"),
            header(r#"{"kid": "p"}"#),
            header(r#"{"alg": 256}"#),
            header(r#"{"alg": "ES256", "alg": "none"}"#),
        ];
        for case in &cases {
            assert_eq!(v.verify(case, NOW), Err(JwtError::Malformed), "{case}");
        }
        // A payload that is not a JSON object, properly signed.
        let input = format!("{}.{}", parts[0], b64(b"[1,2]"));
        let sig = b64(&signer.sign_raw("ES256", input.as_bytes()));
        assert_eq!(
            v.verify(&format!("{input}.{sig}"), NOW),
            Err(JwtError::Malformed)
        );

        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(v.verify(&long, NOW), Err(JwtError::TooLong));
        let padded = with(claims(), "pad", json!("x".repeat(MAX_TOKEN_LEN)));
        assert_eq!(
            v.verify(&signer.sign("ES256", &padded), NOW),
            Err(JwtError::TooLong)
        );
    }

    #[test]
    fn errors_carry_no_token_content() {
        let signer = Signer::p256("p");
        let v = verifier(&[signer.jwk()]);
        let marker = "MARKER-4711";
        let bad = [
            signer.sign("ES256", &with(claims(), "iss", json!(marker))),
            signer
                .sign("ES256", &with(claims(), "sub", json!(marker)))
                .replace('.', ".x"),
            signer.sign_with(&json!({"alg": marker, "kid": marker}), &claims()),
            signer.sign_with(&json!({"alg": "ES256", "kid": marker}), &claims()),
        ];
        for token in bad {
            let err = v.verify(&token, NOW).expect_err("refused");
            assert!(!format!("{err} {err:?}").contains(marker));
        }
    }

    #[test]
    fn key_sets_are_checked_when_loaded() {
        let config = || JwtConfig::new(ISSUER, AUDIENCE);
        let load = |text: &str| JwtVerifier::new(text, config()).map(|v| v.key_count());
        let p256 = Signer::p256("p").jwk();
        let invalid = |reason| Err(JwksError::InvalidKey { index: 0, reason });

        assert_eq!(load("not json"), Err(JwksError::NotAKeySet));
        assert_eq!(load("{}"), Err(JwksError::NotAKeySet));
        assert_eq!(load(r#"{"keys": {}}"#), Err(JwksError::NotAKeySet));
        assert_eq!(load(r#"{"keys": []}"#), Err(JwksError::NoUsableKeys));
        assert_eq!(
            load(&"x".repeat(MAX_JWKS_LEN + 1)),
            Err(JwksError::TooLarge)
        );
        assert_eq!(load(r#"{"keys": [1]}"#), invalid("not a JSON object"));
        assert_eq!(
            load(&jwks(&[p256.clone(), p256.clone()])),
            Err(JwksError::DuplicateKeyId)
        );

        let short_rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key");
        let n = short_rsa
            .public_key()
            .modulus()
            .big_endian_without_leading_zero();
        let e = short_rsa
            .public_key()
            .exponent()
            .big_endian_without_leading_zero();
        let rsa = |n: &[u8]| json!({"kty": "RSA", "n": b64(n), "e": b64(e)});
        assert_eq!(load(&jwks(&[rsa(n)])), Ok(1));
        // A leading zero byte is tolerated, a 1024-bit modulus is not.
        assert_eq!(load(&jwks(&[rsa(&[&[0][..], n].concat())])), Ok(1));
        assert_eq!(
            load(&jwks(&[rsa(&n[..128])])),
            invalid("RSA modulus shorter than 2048 bits")
        );
        assert_eq!(
            load(&jwks(&[with(rsa(n), "d", json!("AQAB"))])),
            invalid("private key material in the key set")
        );
        assert_eq!(
            load(&jwks(&[with(rsa(n), "alg", json!("ES256"))])),
            invalid("alg does not fit the key type or curve")
        );
        assert_eq!(
            load(&jwks(&[with(p256.clone(), "alg", json!("ES384"))])),
            invalid("alg does not fit the key type or curve")
        );
        assert_eq!(
            load(&jwks(&[with(p256.clone(), "x", json!("AAAA"))])),
            invalid("EC coordinates of the wrong length")
        );
        assert_eq!(
            load(&jwks(&[with(p256.clone(), "x", json!(b64(&[1; 32])))])),
            invalid("EC point not on the curve")
        );
        assert_eq!(
            load(&jwks(&[with(p256.clone(), "y", json!("not base64!"))])),
            invalid("a member is not base64url")
        );
        assert_eq!(
            load(&jwks(&[without(p256.clone(), "y")])),
            invalid("a required member is missing")
        );
        assert_eq!(
            load(&jwks(&[with(p256.clone(), "kid", json!(1))])),
            invalid("a member that must be a string is not")
        );
        assert_eq!(
            load(&jwks(&[with(
                Signer::ed25519("e").jwk(),
                "x",
                json!(b64(&[1; 31]))
            )])),
            invalid("Ed25519 key of the wrong length")
        );
        // Curves Ward does not verify with are skipped, not fatal.
        assert_eq!(
            load(&jwks(&[
                with(p256.clone(), "crv", json!("P-521")),
                p256.clone()
            ])),
            Ok(1)
        );
        assert_eq!(
            load(&jwks(&[
                json!({"kty": "OKP", "crv": "Ed448", "x": "AAAA"}),
                p256
            ])),
            Ok(1)
        );
    }
}
