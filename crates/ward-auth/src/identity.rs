//! Users: password hashing, and the decision on the user identity an association carries
//! (PS3.7 D.3.3.7).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ward_types::{IdentityMode, OperationSet, Role, UserName};

use crate::RejectCause;

#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct PasswordError(String);

/// An Argon2id hash of `password` in PHC string format, with a random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Whether `password` matches the PHC hash (constant-time comparison inside argon2).
pub fn verify_password(password: &[u8], phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| Argon2::default().verify_password(password, &hash).is_ok())
        .unwrap_or(false)
}

/// A new random password: 24 characters from an unambiguous alphabet (~140 bits).
pub fn generate_password() -> Result<String, PasswordError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PasswordError("no randomness".into()))?;
    // Modulo bias is negligible for a 57-letter alphabet over 256 values and a 24-character
    // password; what matters here is that every character comes from the system's CSPRNG.
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

/// What checking the association's user identity found (the checking itself needs the user
/// table and the clock, so it happens outside; the decision on it is here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityCheck {
    /// No user identity item.
    NotSent,
    /// A user name without a secret: recorded, never trusted for a role.
    Asserted(String),
    /// A passcode or token that checked out.
    Verified { user: UserName, role: Role },
    /// A passcode or token that did not (or was sent where it is not accepted).
    Failed(&'static str),
}

/// The user an association acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationUser {
    pub name: String,
    /// Present only for a verified identity.
    pub role: Option<Role>,
}

/// Decides on an association's user identity for an AE whose registry entry says `mode`.
/// A failed check is a rejection whatever the mode: a wrong passcode is never ignored.
pub fn decide_identity(
    mode: IdentityMode,
    check: &IdentityCheck,
) -> Result<Option<AssociationUser>, RejectCause> {
    match (check, mode) {
        (IdentityCheck::Failed(_), _) => Err(RejectCause::IdentityFailed),
        (IdentityCheck::Verified { user, role }, _) => Ok(Some(AssociationUser {
            name: user.as_str().to_owned(),
            role: Some(*role),
        })),
        (IdentityCheck::Asserted(_) | IdentityCheck::NotSent, IdentityMode::Required) => {
            Err(RejectCause::IdentityRequired)
        }
        (IdentityCheck::Asserted(name), _) => Ok(Some(AssociationUser {
            name: name.clone(),
            role: None,
        })),
        (IdentityCheck::NotSent, _) => Ok(None),
    }
}

/// The operations an association may perform: the AE's, narrowed by a verified user's role.
pub fn effective_operations(ae: OperationSet, user: Option<&AssociationUser>) -> OperationSet {
    match user.and_then(|u| u.role) {
        Some(role) => ae
            .iter()
            .filter(|op| role.operations().contains(*op))
            .collect(),
        None => ae,
    }
}

/// Whether the association may run a query that enumerates patients or studies.
pub fn may_enumerate(user: Option<&AssociationUser>) -> bool {
    user.and_then(|u| u.role) == Some(Role::Administrator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(b"correct horse", &hash));
        assert!(!verify_password(b"wrong horse", &hash));
        assert!(!verify_password(b"correct horse", "not a hash"));
        let p = generate_password().unwrap();
        assert_eq!(p.len(), 24);
        assert_ne!(p, generate_password().unwrap());
    }

    #[test]
    fn every_mode_and_check() {
        let verified = IdentityCheck::Verified {
            user: UserName::parse("alice").unwrap(),
            role: Role::Clinician,
        };
        let asserted = IdentityCheck::Asserted("bob".into());
        let failed = IdentityCheck::Failed("wrong passcode");
        use IdentityMode::*;
        for mode in [None, Optional, Required] {
            assert_eq!(
                decide_identity(mode, &failed),
                Err(RejectCause::IdentityFailed)
            );
            let user = decide_identity(mode, &verified).unwrap().unwrap();
            assert_eq!(user.role, Some(Role::Clinician));
        }
        assert_eq!(
            decide_identity(Required, &IdentityCheck::NotSent),
            Err(RejectCause::IdentityRequired)
        );
        assert_eq!(
            decide_identity(Required, &asserted),
            Err(RejectCause::IdentityRequired)
        );
        assert_eq!(
            decide_identity(Optional, &IdentityCheck::NotSent),
            Ok(Option::None)
        );
        assert_eq!(
            decide_identity(None, &asserted).unwrap().unwrap().role,
            Option::None
        );
    }

    #[test]
    fn roles_narrow_what_an_ae_may_do() {
        let ae: OperationSet = "echo,store,find,get".parse().unwrap();
        let clinician = AssociationUser {
            name: "c".into(),
            role: Some(Role::Clinician),
        };
        let narrowed = effective_operations(ae, Some(&clinician));
        assert_eq!(narrowed.to_string(), "echo,find,get");
        let asserted = AssociationUser {
            name: "x".into(),
            role: Option::None,
        };
        assert_eq!(effective_operations(ae, Some(&asserted)), ae);
        assert!(!may_enumerate(Some(&clinician)));
        assert!(!may_enumerate(Option::None));
        let admin = AssociationUser {
            name: "a".into(),
            role: Some(Role::Administrator),
        };
        assert!(may_enumerate(Some(&admin)));
    }
}
