//! Export of a record as a DICOM audit message (PS3.15 A.5, the DICOM form of RFC 3881), for
//! forwarding to an audit repository (IHE ATNA).

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use crate::event::{Action, Actor, Outcome, detail_keys};
use crate::record::AuditRecord;

/// A coded value: code, coding scheme, meaning.
#[derive(Clone, Copy)]
struct Code(&'static str, &'static str, &'static str);

const fn dcm(code: &'static str, meaning: &'static str) -> Code {
    Code(code, "DCM", meaning)
}

const APPLICATION_ACTIVITY: Code = dcm("110100", "Application Activity");
const AUDIT_LOG_USED: Code = dcm("110101", "Audit Log Used");
const INSTANCES_TRANSFERRED: Code = dcm("110104", "DICOM Instances Transferred");
const QUERY: Code = dcm("110112", "Query");
const SECURITY_ALERT: Code = dcm("110113", "Security Alert");
const USER_AUTHENTICATION: Code = dcm("110114", "User Authentication");

const APPLICATION_START: Code = dcm("110120", "Application Start");
const APPLICATION_STOP: Code = dcm("110121", "Application Stop");
const LOGIN: Code = dcm("110122", "Login");
const LOGOUT: Code = dcm("110123", "Logout");
const NODE_AUTHENTICATION: Code = dcm("110126", "Node Authentication");
const SECURITY_CONFIGURATION: Code = dcm("110129", "Security Configuration");
const SOFTWARE_CONFIGURATION: Code = dcm("110131", "Software Configuration");
const RESTRICTED_FUNCTION: Code = dcm("110132", "Use of Restricted Function");
const AUDIT_RECORDING_STOPPED: Code = dcm("110133", "Audit Recording Stopped");
const AUDIT_RECORDING_STARTED: Code = dcm("110134", "Audit Recording Started");
const USER_SECURITY_ATTRIBUTES_CHANGED: Code = dcm("110137", "User Security Attributes Changed");

const APPLICATION: Code = dcm("110150", "Application");
const APPLICATION_LAUNCHER: Code = dcm("110151", "Application Launcher");
const DESTINATION: Code = dcm("110152", "Destination Role ID");
const SOURCE: Code = dcm("110153", "Source Role ID");

const STUDY_INSTANCE_UID: Code = dcm("110180", "Study Instance UID");
const SOP_CLASS_UID: Code = dcm("110181", "SOP Class UID");
const PATIENT_NUMBER: Code = Code("2", "RFC-3881", "Patient Number");
/// RFC 3881 audit source type 4: application server process.
const APPLICATION_SERVER: Code = dcm("4", "Application Server Process");

/// Values of [`detail_keys::ALERT_TYPE`] and the Security Alert event type each exports as.
const ALERT_TYPES: &[(&str, Code)] = &[
    ("node_authentication", NODE_AUTHENTICATION),
    ("security_configuration", SECURITY_CONFIGURATION),
    ("software_configuration", SOFTWARE_CONFIGURATION),
    ("restricted_function", RESTRICTED_FUNCTION),
    ("audit_recording_stopped", AUDIT_RECORDING_STOPPED),
    ("audit_recording_started", AUDIT_RECORDING_STARTED),
];

/// How one action maps onto the message: event ID, event type, action code (C, R, U, D, E),
/// and the roles of the peer and of Ward when the message has a direction.
struct Mapping {
    event_id: Code,
    event_type: Option<Code>,
    action_code: &'static str,
    peer_role: Option<Code>,
    ward_role: Option<Code>,
}

fn mapping(action: Action, detail: &Value, actor_known: bool) -> Mapping {
    let plain = |event_id, event_type, action_code| Mapping {
        event_id,
        event_type,
        action_code,
        peer_role: None,
        ward_role: None,
    };
    let directed = |event_id, action_code, peer, ward| Mapping {
        event_id,
        event_type: None,
        action_code,
        peer_role: Some(peer),
        ward_role: Some(ward),
    };
    match action {
        Action::ApplicationStart | Action::ApplicationStop => Mapping {
            event_type: Some(if action == Action::ApplicationStart {
                APPLICATION_START
            } else {
                APPLICATION_STOP
            }),
            ..directed(APPLICATION_ACTIVITY, "E", APPLICATION_LAUNCHER, APPLICATION)
        },
        Action::AssociationStart
        | Action::AssociationRejected
        | Action::Login
        | Action::LoginFailed => plain(USER_AUTHENTICATION, Some(LOGIN), "E"),
        Action::AssociationEnd => plain(USER_AUTHENTICATION, Some(LOGOUT), "E"),
        Action::Store => directed(INSTANCES_TRANSFERRED, "C", SOURCE, DESTINATION),
        Action::Retrieve => directed(INSTANCES_TRANSFERRED, "R", DESTINATION, SOURCE),
        Action::Query => directed(QUERY, "E", SOURCE, DESTINATION),
        Action::Refusal => plain(SECURITY_ALERT, Some(RESTRICTED_FUNCTION), "E"),
        Action::ConfigChange => plain(SECURITY_ALERT, Some(SOFTWARE_CONFIGURATION), "E"),
        Action::RegistryChange => {
            plain(SECURITY_ALERT, Some(USER_SECURITY_ATTRIBUTES_CHANGED), "E")
        }
        Action::SecurityAlert => {
            let named = detail
                .get(detail_keys::ALERT_TYPE)
                .and_then(Value::as_str)
                .and_then(|t| ALERT_TYPES.iter().find(|(name, _)| *name == t))
                .map(|(_, code)| *code);
            let default = if actor_known {
                NODE_AUTHENTICATION
            } else {
                SOFTWARE_CONFIGURATION
            };
            plain(SECURITY_ALERT, Some(named.unwrap_or(default)), "E")
        }
        Action::AuditRead => plain(AUDIT_LOG_USED, None, "R"),
        // Who may connect and as whom is security configuration; reading it is recorded as
        // such, with the Read action code.
        Action::AdminRead => plain(SECURITY_ALERT, Some(SECURITY_CONFIGURATION), "R"),
    }
}

/// Actions that are a denial whatever outcome the caller recorded.
fn is_denial(action: Action) -> bool {
    matches!(
        action,
        Action::AssociationRejected | Action::LoginFailed | Action::Refusal
    )
}

/// The record as a DICOM audit message (XML, UTF-8). `source_id` names this Ward instance
/// (AuditSourceID, and Ward's ActiveParticipant UserID), e.g. its AE title or host name.
///
/// Patients, studies and instances are exported from the detail keys in [`detail_keys`];
/// other detail stays in the log only. The actor's certificate subject is exported as
/// UserName when no user is known.
pub fn to_dicom_audit_xml(record: &AuditRecord, source_id: &str) -> String {
    let event = &record.event;
    let actor = &event.actor;
    let actor_known = actor.ae_title.is_some()
        || actor.user.is_some()
        || actor.address.is_some()
        || actor.certificate.is_some();
    let map = mapping(event.action, &event.detail, actor_known);
    let failed = matches!(event.outcome, Outcome::Failure { .. }) || is_denial(event.action);

    let mut x = Xml::default();
    x.out
        .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.open("AuditMessage", &[]);

    x.open(
        "EventIdentification",
        &[
            ("EventActionCode", map.action_code),
            ("EventDateTime", &record.time_rfc3339()),
            ("EventOutcomeIndicator", if failed { "4" } else { "0" }),
        ],
    );
    x.code("EventID", map.event_id);
    if let Some(event_type) = map.event_type {
        x.code("EventTypeCode", event_type);
    }
    if let Outcome::Failure { status, reason } = &event.outcome {
        let description = match status {
            Some(status) => format!("{reason} (status 0x{status:04X})"),
            None => reason.clone(),
        };
        x.text("EventOutcomeDescription", &description);
    }
    x.close("EventIdentification");

    if actor_known {
        participant(&mut x, actor, map.peer_role);
    }
    let mut ward = vec![("UserID", source_id)];
    // Ward is the requestor only of what it did on its own (start, stop, its own alerts).
    ward.push((
        "UserIsRequestor",
        if actor_known { "false" } else { "true" },
    ));
    x.open("ActiveParticipant", &ward);
    if let Some(role) = map.ward_role {
        x.code("RoleIDCode", role);
    }
    x.close("ActiveParticipant");

    x.open("AuditSourceIdentification", &[("AuditSourceID", source_id)]);
    x.code("AuditSourceTypeCode", APPLICATION_SERVER);
    x.close("AuditSourceIdentification");

    participant_objects(&mut x, event.action, &event.detail);
    x.close("AuditMessage");
    x.out
}

fn participant(x: &mut Xml, actor: &Actor, role: Option<Code>) {
    let user_id = actor
        .user
        .as_deref()
        .or(actor.ae_title.as_deref())
        .or(actor.address.as_deref())
        .or(actor.certificate.as_deref())
        .unwrap_or_default();
    let alternative = actor.ae_title.as_ref().map(|ae| format!("AETITLES={ae}"));
    let mut attrs = vec![("UserID", user_id)];
    if let Some(alternative) = &alternative {
        attrs.push(("AlternativeUserID", alternative));
    }
    if let Some(name) = actor.user.as_deref().or(actor.certificate.as_deref()) {
        attrs.push(("UserName", name));
    }
    attrs.push(("UserIsRequestor", "true"));
    let access_point = actor.address.as_deref().map(network_access_point);
    if let Some((id, kind)) = &access_point {
        attrs.push(("NetworkAccessPointID", id));
        attrs.push(("NetworkAccessPointTypeCode", kind));
    }
    x.open("ActiveParticipant", &attrs);
    if let Some(role) = role {
        x.code("RoleIDCode", role);
    }
    x.close("ActiveParticipant");
}

/// The access point ID and its RFC 3881 type: 2 for an IP address (the port is dropped), 1 for
/// anything else (a host name).
fn network_access_point(address: &str) -> (String, &'static str) {
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return (socket.ip().to_string(), "2");
    }
    if let Ok(ip) = address.parse::<IpAddr>() {
        return (ip.to_string(), "2");
    }
    (address.to_owned(), "1")
}

/// String values of `detail[singular]` and of the array `detail[plural]`; anything else under
/// those keys is ignored.
fn strings<'a>(detail: &'a Value, singular: &str, plural: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = detail
        .get(singular)
        .and_then(Value::as_str)
        .into_iter()
        .collect();
    if let Some(list) = detail.get(plural).and_then(Value::as_array) {
        out.extend(list.iter().filter_map(Value::as_str));
    }
    out
}

fn participant_objects(x: &mut Xml, action: Action, detail: &Value) {
    let studies = strings(
        detail,
        detail_keys::STUDY_INSTANCE_UID,
        detail_keys::STUDY_INSTANCE_UIDS,
    );
    let instances = strings(
        detail,
        detail_keys::SOP_INSTANCE_UID,
        detail_keys::SOP_INSTANCE_UIDS,
    );
    let sop_class = detail
        .get(detail_keys::SOP_CLASS_UID)
        .and_then(Value::as_str);

    if action == Action::Query {
        let keys = detail.get(detail_keys::KEYS);
        if keys.is_some() || sop_class.is_some() {
            x.open(
                "ParticipantObjectIdentification",
                &[
                    ("ParticipantObjectID", sop_class.unwrap_or_default()),
                    ("ParticipantObjectTypeCode", "2"),
                    ("ParticipantObjectTypeCodeRole", "3"),
                ],
            );
            x.code("ParticipantObjectIDTypeCode", SOP_CLASS_UID);
            if let Some(keys) = keys {
                // PS3.15 wants the query data set here; Ward's front doors log the keys as
                // JSON, which is what this carries (base64, as the schema requires).
                x.text(
                    "ParticipantObjectQuery",
                    &base64(keys.to_string().as_bytes()),
                );
            }
            if let Some(matches) = detail.get(detail_keys::MATCHES).and_then(Value::as_u64) {
                x.empty(
                    "ParticipantObjectDetail",
                    &[
                        ("type", "Matches"),
                        ("value", &base64(matches.to_string().as_bytes())),
                    ],
                );
            }
            x.close("ParticipantObjectIdentification");
        }
    }

    for study in &studies {
        x.open(
            "ParticipantObjectIdentification",
            &[
                ("ParticipantObjectID", study),
                ("ParticipantObjectTypeCode", "2"),
                ("ParticipantObjectTypeCodeRole", "3"),
            ],
        );
        x.code("ParticipantObjectIDTypeCode", STUDY_INSTANCE_UID);
        // Instances can be attributed to a study only when the event names just one.
        if let (Some(class), [_]) = (sop_class.filter(|_| action != Action::Query), &studies[..]) {
            let count = instances.len().to_string();
            x.open("ParticipantObjectDescription", &[]);
            x.open("SOPClass", &[("UID", class), ("NumberOfInstances", &count)]);
            for instance in &instances {
                x.empty("Instance", &[("UID", instance)]);
            }
            x.close("SOPClass");
            x.close("ParticipantObjectDescription");
        }
        x.close("ParticipantObjectIdentification");
    }

    let patients = strings(detail, detail_keys::PATIENT_ID, detail_keys::PATIENT_IDS);
    let name = detail
        .get(detail_keys::PATIENT_NAME)
        .and_then(Value::as_str);
    for patient in &patients {
        x.open(
            "ParticipantObjectIdentification",
            &[
                ("ParticipantObjectID", patient),
                ("ParticipantObjectTypeCode", "1"),
                ("ParticipantObjectTypeCodeRole", "1"),
            ],
        );
        x.code("ParticipantObjectIDTypeCode", PATIENT_NUMBER);
        if let (Some(name), [_]) = (name, &patients[..]) {
            x.text("ParticipantObjectName", name);
        }
        x.close("ParticipantObjectIdentification");
    }
}

/// Just enough of an XML writer: every attribute value and text goes through [`escape`].
#[derive(Default)]
struct Xml {
    out: String,
}

impl Xml {
    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            escape(&mut self.out, value);
            self.out.push('"');
        }
    }

    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start(name, attrs);
        self.out.push('>');
    }

    fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start(name, attrs);
        self.out.push_str("/>");
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn text(&mut self, name: &str, text: &str) {
        self.open(name, &[]);
        escape(&mut self.out, text);
        self.close(name);
    }

    fn code(&mut self, name: &str, Code(code, system, meaning): Code) {
        self.empty(
            name,
            &[
                ("csd-code", code),
                ("codeSystemName", system),
                ("originalText", meaning),
            ],
        );
    }
}

/// Escapes for both attribute values and text. Tab, newline and carriage return become
/// character references because a parser would otherwise normalise them to spaces in
/// attributes; characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF)
/// become U+FFFD, since values come from peers and may hold anything.
fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
