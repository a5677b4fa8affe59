//! Presentation context negotiation (PS3.8 §7.1.1.13, PS3.7 Annex D): which abstract syntaxes
//! Ward serves, which transfer syntax each accepted context uses, and the user information
//! items of the A-ASSOCIATE-AC.

use dicom_ul::pdu::{
    PresentationContextProposed, PresentationContextResult, PresentationContextResultReason,
    UserVariableItem,
};
use ward_types::{Operation, OperationSet};

pub const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// PS3.8 §9.3.2.2: presentation context ids are odd numbers from 1 to 255, so at most 128.
pub const MAX_CONTEXTS: usize = 128;

/// A presentation context Ward accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedContext {
    pub id: u8,
    pub abstract_syntax: String,
    pub transfer_syntax: String,
}

/// The operation a proposed abstract syntax would serve, if Ward serves it at all.
pub fn operation_for(abstract_syntax: &str) -> Option<Operation> {
    if abstract_syntax == VERIFICATION {
        Some(Operation::Echo)
    } else if ward_dicom::is_storage_sop_class(abstract_syntax) {
        Some(Operation::Store)
    } else {
        None
    }
}

/// Answers each proposed context. A context is accepted only if Ward serves its abstract syntax,
/// the peer is allowed the operation, and one of the proposed transfer syntaxes is readable;
/// the first such transfer syntax in the peer's order of preference is chosen.
pub fn negotiate(
    proposed: &[PresentationContextProposed],
    allowed: OperationSet,
) -> (Vec<PresentationContextResult>, Vec<AcceptedContext>) {
    let mut results = Vec::with_capacity(proposed.len());
    let mut accepted = Vec::new();
    let mut seen = [false; 256];
    for pc in proposed {
        let abstract_syntax = pc.abstract_syntax.trim_end_matches(['\0', ' ']);
        let duplicate = std::mem::replace(&mut seen[usize::from(pc.id)], true);
        let reason = if pc.id % 2 == 0 || duplicate {
            PresentationContextResultReason::NoReason
        } else {
            match operation_for(abstract_syntax) {
                None => PresentationContextResultReason::AbstractSyntaxNotSupported,
                Some(op) if !allowed.contains(op) => PresentationContextResultReason::UserRejection,
                Some(_) => match choose_transfer_syntax(&pc.transfer_syntaxes) {
                    Some(ts) => {
                        accepted.push(AcceptedContext {
                            id: pc.id,
                            abstract_syntax: abstract_syntax.to_owned(),
                            transfer_syntax: ts.to_owned(),
                        });
                        results.push(PresentationContextResult {
                            id: pc.id,
                            reason: PresentationContextResultReason::Acceptance,
                            transfer_syntax: ts.to_owned(),
                        });
                        continue;
                    }
                    None => PresentationContextResultReason::TransferSyntaxesNotSupported,
                },
            }
        };
        results.push(PresentationContextResult {
            id: pc.id,
            reason,
            // PS3.8 §9.3.3.2: the transfer syntax sub-item is not significant when the context
            // is rejected, but it must be present.
            transfer_syntax: IMPLICIT_VR_LE.to_owned(),
        });
    }
    (results, accepted)
}

fn choose_transfer_syntax(proposed: &[String]) -> Option<&str> {
    proposed
        .iter()
        .map(|ts| ts.trim_end_matches(['\0', ' ']))
        .find(|ts| ward_dicom::is_readable_transfer_syntax(ts))
}

/// The peer's maximum PDU length (0: no limit) from its user information.
pub fn peer_max_pdu(items: &[UserVariableItem]) -> u32 {
    items
        .iter()
        .find_map(|item| match item {
            UserVariableItem::MaxLength(len) => Some(*len),
            _ => None,
        })
        .unwrap_or(0)
}

/// The user information Ward sends in its A-ASSOCIATE-RQ and -AC.
pub fn our_user_variables(max_pdu: u32) -> Vec<UserVariableItem> {
    vec![
        UserVariableItem::MaxLength(max_pdu),
        UserVariableItem::ImplementationClassUID(ward_types::IMPLEMENTATION_CLASS_UID.to_owned()),
        UserVariableItem::ImplementationVersionName(
            ward_types::IMPLEMENTATION_VERSION_NAME.to_owned(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
    const FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";

    fn pc(id: u8, abs: &str, ts: &[&str]) -> PresentationContextProposed {
        PresentationContextProposed {
            id,
            abstract_syntax: abs.to_owned(),
            transfer_syntaxes: ts.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn contexts_follow_permissions_and_support() {
        let allowed: OperationSet = "echo,store".parse().unwrap();
        let proposed = [
            pc(1, VERIFICATION, &[IMPLICIT_VR_LE]),
            pc(3, CT, &["1.2.3.4.5", EXPLICIT_VR_LE, IMPLICIT_VR_LE]),
            pc(5, FIND, &[IMPLICIT_VR_LE]),
            pc(7, CT, &["1.2.3.4.5"]),
            pc(8, CT, &[IMPLICIT_VR_LE]),
            pc(3, CT, &[IMPLICIT_VR_LE]),
        ];
        let (results, accepted) = negotiate(&proposed, allowed);
        let reasons: Vec<_> = results.iter().map(|r| r.reason.clone()).collect();
        use PresentationContextResultReason::*;
        assert_eq!(
            reasons,
            [
                Acceptance,
                Acceptance,
                AbstractSyntaxNotSupported,
                TransferSyntaxesNotSupported,
                NoReason,
                NoReason
            ]
        );
        assert_eq!(accepted[1].transfer_syntax, EXPLICIT_VR_LE);
        assert_eq!(accepted.len(), 2);
    }

    #[test]
    fn operations_not_allowed_are_user_rejections() {
        let echo_only: OperationSet = "echo".parse().unwrap();
        let (results, accepted) = negotiate(&[pc(1, CT, &[EXPLICIT_VR_LE])], echo_only);
        assert_eq!(
            results[0].reason,
            PresentationContextResultReason::UserRejection
        );
        assert!(accepted.is_empty());
    }

    #[test]
    fn encapsulated_syntaxes_are_accepted_as_sent() {
        let store: OperationSet = "store".parse().unwrap();
        let jpeg_baseline = "1.2.840.10008.1.2.4.50";
        let (_, accepted) = negotiate(&[pc(1, CT, &[jpeg_baseline])], store);
        assert_eq!(accepted[0].transfer_syntax, jpeg_baseline);
    }
}
