//! Policy decisions. Every function here is pure: it sees the facts (who is calling, from where,
//! what the registry says) and returns a decision, so every case can be tested exhaustively and
//! no decision depends on I/O that could fail open.

pub mod identity;
pub mod jwt;
pub mod pki;
pub mod throttle;
pub mod tls;

use std::net::IpAddr;

use ward_types::{AePeer, AeTitle, Operation, OperationSet};

pub use jwt::{Claims, JwtConfig, JwtError, JwtVerifier};
pub use tls::PeerCertificate;

/// How an association reached Ward.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    /// Plain TCP.
    Plain,
    /// TLS, with the client certificate the handshake accepted.
    Tls(&'a PeerCertificate),
}

/// What an association request claims and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct AssociationFacts<'a> {
    /// Calling AE title as sent (untrimmed, unvalidated).
    pub calling_ae: &'a str,
    /// Called AE title as sent (untrimmed, unvalidated).
    pub called_ae: &'a str,
    /// The peer's address as the socket reports it.
    pub peer_addr: IpAddr,
    pub transport: Transport<'a>,
}

/// The answer to an association request. A rejection carries no reason on purpose: whatever was
/// wrong, the peer gets the same A-ASSOCIATE-RJ, so the reject cannot be used as an oracle for
/// valid AE titles or addresses. The reason goes to the operational log as a category only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Accept {
        peer: AeTitle,
        allowed: OperationSet,
    },
    Reject(RejectCause),
}

/// Why an association was refused: for Ward's own logs, never for the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCause {
    CalledTitleMismatch,
    CallingTitleInvalid,
    CallingTitleUnknown,
    AddressNotAllowed,
    NoOperationsAllowed,
    CertificateNotForThisAe,
    PlainTransportNotAllowed,
    /// Too many recent failures for this calling AE title (decided by the caller's tracker).
    Throttled,
    /// The AE must identify a user and the association did not.
    IdentityRequired,
    /// The user identity sent did not check out.
    IdentityFailed,
}

impl RejectCause {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCause::CalledTitleMismatch => "called AE title is not Ward's",
            RejectCause::CallingTitleInvalid => "calling AE title is malformed",
            RejectCause::CallingTitleUnknown => "calling AE title is not registered",
            RejectCause::AddressNotAllowed => "peer address is outside the registered host",
            RejectCause::NoOperationsAllowed => "registered peer has no operation allowed",
            RejectCause::CertificateNotForThisAe => {
                "client certificate was not issued or pinned for this AE title"
            }
            RejectCause::Throttled => "calling AE title in back-off after repeated failures",
            RejectCause::IdentityRequired => "user identity required and not given",
            RejectCause::IdentityFailed => "user identity did not check out",
            RejectCause::PlainTransportNotAllowed => {
                "plain TCP from beyond loopback by a peer not declared legacy"
            }
        }
    }
}

/// Decides an association request. `registered` is the registry entry for the calling title, if
/// any (looked up by the caller with the title as sent, after validation).
pub fn admit(
    facts: &AssociationFacts<'_>,
    own_ae: &AeTitle,
    registered: Option<&AePeer>,
) -> Admission {
    let called_ok = AeTitle::parse(facts.called_ae).is_ok_and(|called| called == *own_ae);
    if !called_ok {
        return Admission::Reject(RejectCause::CalledTitleMismatch);
    }
    let Ok(calling) = AeTitle::parse(facts.calling_ae) else {
        return Admission::Reject(RejectCause::CallingTitleInvalid);
    };
    let Some(peer) = registered.filter(|p| p.aet == calling) else {
        return Admission::Reject(RejectCause::CallingTitleUnknown);
    };
    if !peer.host.contains(facts.peer_addr) {
        return Admission::Reject(RejectCause::AddressNotAllowed);
    }
    if peer.allow.is_empty() {
        return Admission::Reject(RejectCause::NoOperationsAllowed);
    }
    match facts.transport {
        Transport::Tls(cert) => {
            let issued_to_this_ae =
                cert.issued_by_ward && cert.common_name.as_deref() == Some(calling.as_str());
            let pinned_for_this_ae = peer.cert_sha256 == Some(cert.fingerprint);
            if !issued_to_this_ae && !pinned_for_this_ae {
                return Admission::Reject(RejectCause::CertificateNotForThisAe);
            }
        }
        Transport::Plain => {
            if !facts.peer_addr.to_canonical().is_loopback() && !peer.legacy_plain {
                return Admission::Reject(RejectCause::PlainTransportNotAllowed);
            }
        }
    }
    Admission::Accept {
        peer: calling,
        allowed: peer.allow,
    }
}

/// Whether an admitted peer may perform `op`.
pub fn may(allowed: OperationSet, op: Operation) -> bool {
    allowed.contains(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(aet: &str, host: &str, allow: &str) -> AePeer {
        AePeer {
            aet: AeTitle::parse(aet).unwrap(),
            host: host.parse().unwrap(),
            port: None,
            allow: allow.parse().unwrap(),
            cert_sha256: None,
            // The address-based tests below use non-loopback addresses over plain TCP.
            legacy_plain: true,
            identity: Default::default(),
        }
    }

    fn facts<'a>(calling: &'a str, called: &'a str, addr: &str) -> AssociationFacts<'a> {
        AssociationFacts {
            calling_ae: calling,
            called_ae: called,
            peer_addr: addr.parse().unwrap(),
            transport: Transport::Plain,
        }
    }

    fn cert(issued_by_ward: bool, cn: &str, fingerprint: u8) -> PeerCertificate {
        PeerCertificate {
            fingerprint: [fingerprint; 32],
            issued_by_ward,
            common_name: Some(cn.to_owned()),
            subject: None,
        }
    }

    #[test]
    fn certificates_bind_ae_titles() {
        let own = AeTitle::parse("WARD").unwrap();
        let plain_ct = AePeer {
            legacy_plain: false,
            ..peer("CT1", "10.0.0.0/8", "echo,store")
        };
        let pinned_mr = AePeer {
            cert_sha256: Some([9; 32]),
            legacy_plain: false,
            ..peer("MR1", "10.0.0.0/8", "store")
        };
        fn tls<'a>(calling: &'a str, c: &'a PeerCertificate) -> AssociationFacts<'a> {
            AssociationFacts {
                transport: Transport::Tls(c),
                ..facts(calling, "WARD", "10.1.2.3")
            }
        }
        let ward_ct = &cert(true, "CT1", 1);
        let ward_mr = &cert(true, "MR1", 2);
        let foreign_ct = &cert(false, "CT1", 3);
        let pinned = &cert(false, "anything", 9);
        let accepted = |f: AssociationFacts<'_>, p: &AePeer| {
            matches!(admit(&f, &own, Some(p)), Admission::Accept { .. })
        };
        assert!(
            accepted(tls("CT1", ward_ct), &plain_ct),
            "Ward-issued, right AE"
        );
        assert!(
            !accepted(tls("CT1", ward_mr), &plain_ct),
            "Ward-issued to another AE"
        );
        assert!(
            !accepted(tls("CT1", foreign_ct), &plain_ct),
            "right name, other issuer"
        );
        assert!(
            accepted(tls("MR1", pinned), &pinned_mr),
            "pinned for this AE"
        );
        assert!(
            !accepted(tls("CT1", pinned), &plain_ct),
            "pinned for another AE"
        );
        assert!(
            accepted(tls("MR1", ward_mr), &pinned_mr),
            "Ward-issued also works when pinned"
        );
        // Plain TCP: loopback always, elsewhere only for declared legacy peers.
        assert!(!accepted(facts("CT1", "WARD", "10.1.2.3"), &plain_ct));
        let local_ct = AePeer {
            legacy_plain: false,
            ..peer("CT1", "127.0.0.1", "echo")
        };
        assert!(accepted(facts("CT1", "WARD", "127.0.0.1"), &local_ct));
        assert!(accepted(
            facts("CT1", "WARD", "::ffff:127.0.0.1"),
            &local_ct
        ));
        let legacy = peer("CT1", "10.0.0.0/8", "store");
        assert!(accepted(facts("CT1", "WARD", "10.1.2.3"), &legacy));
    }

    /// calling, called, peer address, registry entry, expected operations or cause.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a AePeer>,
        Result<&'a str, RejectCause>,
    );

    #[test]
    fn every_combination_of_title_address_and_registration() {
        let own = AeTitle::parse("WARD").unwrap();
        let ct = peer("CT1", "10.0.0.5", "echo,store");
        let cases: &[Case] = &[
            ("CT1", "WARD", "10.0.0.5", Some(&ct), Ok("echo,store")),
            ("CT1 ", " WARD ", "10.0.0.5", Some(&ct), Ok("echo,store")),
            (
                "CT1",
                "WARD",
                "::ffff:10.0.0.5",
                Some(&ct),
                Ok("echo,store"),
            ),
            (
                "CT1",
                "WARD",
                "10.0.0.6",
                Some(&ct),
                Err(RejectCause::AddressNotAllowed),
            ),
            (
                "CT1",
                "ANY-SCP",
                "10.0.0.5",
                Some(&ct),
                Err(RejectCause::CalledTitleMismatch),
            ),
            (
                "CT1",
                "ward",
                "10.0.0.5",
                Some(&ct),
                Err(RejectCause::CalledTitleMismatch),
            ),
            (
                "CT1",
                "",
                "10.0.0.5",
                Some(&ct),
                Err(RejectCause::CalledTitleMismatch),
            ),
            (
                "MR1",
                "WARD",
                "10.0.0.5",
                None,
                Err(RejectCause::CallingTitleUnknown),
            ),
            // A registry entry for another title never admits this one.
            (
                "MR1",
                "WARD",
                "10.0.0.5",
                Some(&ct),
                Err(RejectCause::CallingTitleUnknown),
            ),
            (
                "",
                "WARD",
                "10.0.0.5",
                None,
                Err(RejectCause::CallingTitleInvalid),
            ),
            (
                "A\\B",
                "WARD",
                "10.0.0.5",
                None,
                Err(RejectCause::CallingTitleInvalid),
            ),
            (
                "ABCDEFGHIJKLMNOPQ",
                "WARD",
                "10.0.0.5",
                None,
                Err(RejectCause::CallingTitleInvalid),
            ),
        ];
        for (calling, called, addr, reg, expected) in cases {
            let got = admit(&facts(calling, called, addr), &own, *reg);
            let want = match expected {
                Ok(ops) => Admission::Accept {
                    peer: AeTitle::parse(calling).unwrap(),
                    allowed: ops.parse().unwrap(),
                },
                Err(cause) => Admission::Reject(*cause),
            };
            assert_eq!(got, want, "{calling:?} -> {called:?} from {addr}");
        }
    }

    #[test]
    fn empty_operation_list_admits_nothing() {
        let own = AeTitle::parse("WARD").unwrap();
        let idle = peer("IDLE", "127.0.0.1", "");
        assert_eq!(
            admit(&facts("IDLE", "WARD", "127.0.0.1"), &own, Some(&idle)),
            Admission::Reject(RejectCause::NoOperationsAllowed)
        );
    }

    #[test]
    fn networks_admit_their_members_only() {
        let own = AeTitle::parse("WARD").unwrap();
        let ward_net = peer("US", "192.168.10.0/24", "store");
        for (addr, ok) in [
            ("192.168.10.1", true),
            ("192.168.10.254", true),
            ("192.168.11.1", false),
        ] {
            let got = admit(&facts("US", "WARD", addr), &own, Some(&ward_net));
            assert_eq!(matches!(got, Admission::Accept { .. }), ok, "{addr}");
        }
    }

    #[test]
    fn operations_follow_the_registry() {
        let set: OperationSet = "echo,store".parse().unwrap();
        for op in Operation::ALL {
            assert_eq!(
                may(set, op),
                matches!(op, Operation::Echo | Operation::Store)
            );
        }
    }
}
