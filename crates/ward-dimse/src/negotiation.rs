//! Presentation context negotiation (PS3.8 §7.1.1.13, PS3.7 Annex D): which abstract syntaxes
//! Ward serves, which transfer syntax each accepted context uses, and the user information
//! items of the A-ASSOCIATE-AC.

use dicom_ul::pdu::{
    PresentationContextProposed, PresentationContextResult, PresentationContextResultReason,
    RequestorRoles, UserVariableItem,
};
use ward_query::{QueryModel, Service};
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
    /// The operation this context serves.
    pub operation: Operation,
    /// For a storage context: whether the peer accepted the SCP role (PS3.7 D.3.3.4), so that
    /// Ward may send it C-STORE requests on this context as C-GET sub-operations.
    pub peer_is_storage_scp: bool,
}

/// The operation a proposed abstract syntax would serve, if Ward serves it at all.
pub fn operation_for(abstract_syntax: &str) -> Option<Operation> {
    if abstract_syntax == VERIFICATION {
        Some(Operation::Echo)
    } else if ward_dicom::is_storage_sop_class(abstract_syntax) {
        Some(Operation::Store)
    } else {
        QueryModel::from_sop_class(abstract_syntax).map(|(_, service)| match service {
            Service::Find => Operation::Find,
            Service::Get => Operation::Get,
            Service::Move => Operation::Move,
        })
    }
}

/// The outcome of negotiating an A-ASSOCIATE-RQ's presentation contexts.
#[derive(Debug, Clone, Default)]
pub struct Negotiated {
    /// One result per proposed context, for the A-ASSOCIATE-AC.
    pub results: Vec<PresentationContextResult>,
    pub accepted: Vec<AcceptedContext>,
    /// SCP/SCU role selection replies for the A-ASSOCIATE-AC.
    pub role_replies: Vec<UserVariableItem>,
}

/// Answers each proposed context. A context is accepted only if Ward serves its abstract syntax,
/// the peer is allowed the operation, and one of the proposed transfer syntaxes is readable;
/// the first such transfer syntax in the peer's order of preference is chosen.
///
/// A storage context is also accepted from a peer allowed `get` (not `store`) when the peer
/// proposed the SCP role for that SOP class: it will receive C-GET sub-operations on it, and
/// cannot send objects on it.
pub fn negotiate(
    proposed: &[PresentationContextProposed],
    user_variables: &[UserVariableItem],
    allowed: OperationSet,
) -> Negotiated {
    let mut out = Negotiated::default();
    let mut seen = [false; 256];
    let mut replied = std::collections::BTreeSet::new();
    for pc in proposed {
        let abstract_syntax = pc.abstract_syntax.trim_end_matches(['\0', ' ']);
        let duplicate = std::mem::replace(&mut seen[usize::from(pc.id)], true);
        let proposed_scp_role =
            proposed_roles(user_variables, abstract_syntax).is_some_and(|r| r.scp);
        let get_receiver = proposed_scp_role && allowed.contains(Operation::Get);
        let reason = if pc.id % 2 == 0 || duplicate {
            PresentationContextResultReason::NoReason
        } else {
            match operation_for(abstract_syntax) {
                None => PresentationContextResultReason::AbstractSyntaxNotSupported,
                Some(Operation::Store) if !allowed.contains(Operation::Store) && !get_receiver => {
                    PresentationContextResultReason::UserRejection
                }
                Some(op) if op != Operation::Store && !allowed.contains(op) => {
                    PresentationContextResultReason::UserRejection
                }
                Some(op) => match choose_transfer_syntax(&pc.transfer_syntaxes) {
                    Some(ts) => {
                        let peer_is_storage_scp = op == Operation::Store && get_receiver;
                        if peer_is_storage_scp && replied.insert(abstract_syntax.to_owned()) {
                            out.role_replies
                                .push(UserVariableItem::ScuScpRoleSelectionSubItem(
                                    abstract_syntax.to_owned(),
                                    RequestorRoles {
                                        scu: allowed.contains(Operation::Store),
                                        scp: true,
                                    },
                                ));
                        }
                        out.accepted.push(AcceptedContext {
                            id: pc.id,
                            abstract_syntax: abstract_syntax.to_owned(),
                            transfer_syntax: ts.to_owned(),
                            operation: op,
                            peer_is_storage_scp,
                        });
                        out.results.push(PresentationContextResult {
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
        out.results.push(PresentationContextResult {
            id: pc.id,
            reason,
            // PS3.8 §9.3.3.2: the transfer syntax sub-item is not significant when the context
            // is rejected, but it must be present.
            transfer_syntax: IMPLICIT_VR_LE.to_owned(),
        });
    }
    out
}

/// The roles the requestor proposed for `sop_class`, if it sent a role selection item.
fn proposed_roles(items: &[UserVariableItem], sop_class: &str) -> Option<RequestorRoles> {
    items.iter().find_map(|item| match item {
        UserVariableItem::ScuScpRoleSelectionSubItem(uid, roles)
            if uid.trim_end_matches(['\0', ' ']) == sop_class =>
        {
            Some(*roles)
        }
        _ => None,
    })
}

/// The first readable transfer syntax in the proposer's order — except that explicit VR little
/// endian wins over implicit when both are offered: it keeps each element's VR, which the
/// archive then returns as received (most objects arrive explicit, and a C-GET can only send an
/// object as stored on a context of its own transfer syntax).
fn choose_transfer_syntax(proposed: &[String]) -> Option<&str> {
    let mut readable = proposed
        .iter()
        .map(|ts| ts.trim_end_matches(['\0', ' ']))
        .filter(|ts| ward_dicom::is_readable_transfer_syntax(ts));
    let first = readable.next()?;
    if first == IMPLICIT_VR_LE && readable.any(|ts| ts == EXPLICIT_VR_LE) {
        return Some(EXPLICIT_VR_LE);
    }
    Some(first)
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
    const STUDY_GET: &str = "1.2.840.10008.5.1.4.1.2.2.3";

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
            pc(5, "1.2.3.4", &[IMPLICIT_VR_LE]),
            pc(7, CT, &["1.2.3.4.5"]),
            pc(8, CT, &[IMPLICIT_VR_LE]),
            pc(3, CT, &[IMPLICIT_VR_LE]),
        ];
        let n = negotiate(&proposed, &[], allowed);
        let (results, accepted) = (n.results, n.accepted);
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
    fn query_retrieve_contexts_follow_permissions() {
        let find_only: OperationSet = "find".parse().unwrap();
        let n = negotiate(
            &[
                pc(1, FIND, &[IMPLICIT_VR_LE]),
                pc(3, STUDY_GET, &[IMPLICIT_VR_LE]),
            ],
            &[],
            find_only,
        );
        assert_eq!(n.accepted.len(), 1);
        assert_eq!(n.accepted[0].operation, Operation::Find);
        assert_eq!(
            n.results[1].reason,
            PresentationContextResultReason::UserRejection
        );
    }

    #[test]
    fn get_receivers_get_storage_contexts_with_the_scp_role() {
        let get_only: OperationSet = "get".parse().unwrap();
        let roles = [UserVariableItem::ScuScpRoleSelectionSubItem(
            CT.to_owned(),
            RequestorRoles {
                scu: false,
                scp: true,
            },
        )];
        let proposed = [
            pc(1, STUDY_GET, &[IMPLICIT_VR_LE]),
            pc(3, CT, &[EXPLICIT_VR_LE]),
        ];
        let n = negotiate(&proposed, &roles, get_only);
        assert_eq!(n.accepted.len(), 2);
        assert!(n.accepted[1].peer_is_storage_scp);
        assert_eq!(
            n.role_replies,
            vec![UserVariableItem::ScuScpRoleSelectionSubItem(
                CT.to_owned(),
                RequestorRoles {
                    scu: false,
                    scp: true
                }
            )]
        );
        // Without the role item, a get-only peer cannot open a storage context.
        let n = negotiate(&proposed, &[], get_only);
        assert_eq!(n.accepted.len(), 1);
    }

    #[test]
    fn operations_not_allowed_are_user_rejections() {
        let echo_only: OperationSet = "echo".parse().unwrap();
        let n = negotiate(&[pc(1, CT, &[EXPLICIT_VR_LE])], &[], echo_only);
        assert_eq!(
            n.results[0].reason,
            PresentationContextResultReason::UserRejection
        );
        assert!(n.accepted.is_empty());
    }

    #[test]
    fn explicit_little_endian_wins_over_implicit() {
        let store: OperationSet = "store".parse().unwrap();
        let n = negotiate(
            &[pc(
                1,
                CT,
                &[IMPLICIT_VR_LE, "1.2.840.10008.1.2.2", EXPLICIT_VR_LE],
            )],
            &[],
            store,
        );
        assert_eq!(n.accepted[0].transfer_syntax, EXPLICIT_VR_LE);
        let n = negotiate(&[pc(1, CT, &[IMPLICIT_VR_LE])], &[], store);
        assert_eq!(n.accepted[0].transfer_syntax, IMPLICIT_VR_LE);
    }

    #[test]
    fn encapsulated_syntaxes_are_accepted_as_sent() {
        let store: OperationSet = "store".parse().unwrap();
        let jpeg_baseline = "1.2.840.10008.1.2.4.50";
        let n = negotiate(&[pc(1, CT, &[jpeg_baseline])], &[], store);
        assert_eq!(n.accepted[0].transfer_syntax, jpeg_baseline);
    }
}
