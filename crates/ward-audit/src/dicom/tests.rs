use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::json;

use super::*;
use crate::event::AuditEvent;

/// A parsed element: enough of a DOM to check what the export wrote.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn child(&self, name: &str) -> &Element {
        self.children
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no <{name}> in <{}>", self.name))
    }
}

fn element(start: &BytesStart<'_>) -> Element {
    let attrs = start
        .attributes()
        .map(|a| {
            let a = a.expect("well-formed attribute");
            let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
            let value = a.unescape_value().expect("escaped value").into_owned();
            (key, value)
        })
        .collect();
    Element {
        name: String::from_utf8(start.name().as_ref().to_vec()).unwrap(),
        attrs,
        text: String::new(),
        children: Vec::new(),
    }
}

/// Parses `xml`, failing the test on anything not well-formed: mismatched or unclosed tags,
/// bad escapes, more than one root, characters XML 1.0 forbids.
fn parse(xml: &str) -> Element {
    for c in xml.chars() {
        let allowed = matches!(
            c,
            '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..
        );
        assert!(allowed, "character {c:?} not allowed in XML 1.0");
    }
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Decl(_) => assert!(root.is_none() && stack.is_empty()),
            Event::Start(start) => stack.push(element(&start)),
            Event::Empty(start) => {
                let e = element(&start);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => panic!("empty root element"),
                }
            }
            Event::End(end) => {
                let e = stack.pop().expect("end tag without start");
                assert_eq!(end.name().as_ref(), e.name.as_bytes());
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => {
                        assert!(root.is_none(), "two root elements");
                        root = Some(e);
                    }
                }
            }
            Event::Text(text) => {
                let text = text.unescape().expect("escaped text");
                match stack.last_mut() {
                    Some(parent) => parent.text.push_str(&text),
                    None => assert!(text.trim().is_empty(), "text outside the root"),
                }
            }
            Event::Eof => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(stack.is_empty(), "unclosed elements");
    root.expect("a root element")
}

fn record(event: AuditEvent) -> AuditRecord {
    AuditRecord {
        seq: 1,
        time_unix_ms: 1_709_210_096_789,
        event,
        prev_hash: [0; 32],
        hash: [1; 32],
    }
}

const NASTY: &str = "a&b<c>d\"e'f\tg\nh\ri\u{0}j\u{1b}k\u{FFFE}l]]>m\u{1F600}";

fn peer() -> Actor {
    Actor {
        ae_title: Some(format!("AE{NASTY}")),
        user: None,
        address: Some("192.0.2.7:11112".into()),
        certificate: Some(format!("CN=modality,O={NASTY}")),
    }
}

#[test]
fn every_action_exports_well_formed_xml() {
    let actions = [
        Action::ApplicationStart,
        Action::ApplicationStop,
        Action::AssociationStart,
        Action::AssociationEnd,
        Action::AssociationRejected,
        Action::Store,
        Action::Query,
        Action::Retrieve,
        Action::Refusal,
        Action::Login,
        Action::LoginFailed,
        Action::ConfigChange,
        Action::RegistryChange,
        Action::SecurityAlert,
        Action::AuditRead,
    ];
    let detail = json!({
        "patient_id": NASTY,
        "patient_name": NASTY,
        "study_instance_uid": "1.2.3",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "sop_instance_uids": ["1.2.3.4", NASTY],
        "keys": {"PatientName": NASTY},
        "matches": 3,
    });
    for action in actions {
        for outcome in [
            Outcome::Success,
            Outcome::Failure {
                status: Some(0xA700),
                reason: NASTY.into(),
            },
        ] {
            for actor in [peer(), Actor::default()] {
                let event = AuditEvent::new(action, actor)
                    .with_outcome(outcome.clone())
                    .with_detail(detail.clone());
                let xml = to_dicom_audit_xml(&record(event), NASTY);
                let root = parse(&xml);
                assert_eq!(root.name, "AuditMessage");
                let id = root.child("EventIdentification");
                assert_eq!(id.attr("EventDateTime"), Some("2024-02-29T12:34:56.789Z"));
                assert!(id.child("EventID").attr("csd-code").is_some());
                assert_eq!(
                    root.child("AuditSourceIdentification")
                        .attr("AuditSourceID"),
                    Some(escaped(NASTY).as_str())
                );
                assert!(root.children("ActiveParticipant").count() >= 1);
            }
        }
    }
}

/// What a value of `s` reads back as after escaping: characters XML cannot carry are U+FFFD.
fn escaped(s: &str) -> String {
    let mut out = String::new();
    escape(&mut out, s);
    let root = parse(&format!("<r a=\"{out}\"></r>"));
    root.attr("a").unwrap().to_owned()
}

#[test]
fn escaping_keeps_every_representable_character() {
    let back = escaped(NASTY);
    assert_eq!(
        back,
        "a&b<c>d\"e'f\tg\nh\ri\u{FFFD}j\u{FFFD}k\u{FFFD}l]]>m\u{1F600}"
    );
}

#[test]
fn store_names_peer_study_instances_and_patient() {
    let event = AuditEvent::new(Action::Store, peer()).with_detail(json!({
        "patient_id": "PID-1",
        "patient_name": "Doe^Jane",
        "study_instance_uid": "1.2.3",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "sop_instance_uid": "1.2.3.4.5",
    }));
    let root = parse(&to_dicom_audit_xml(&record(event), "WARD"));

    let id = root.child("EventIdentification");
    assert_eq!(id.attr("EventActionCode"), Some("C"));
    assert_eq!(id.attr("EventOutcomeIndicator"), Some("0"));
    assert_eq!(id.child("EventID").attr("csd-code"), Some("110104"));

    let participants: Vec<_> = root.children("ActiveParticipant").collect();
    assert_eq!(participants.len(), 2);
    let peer = participants[0];
    assert_eq!(peer.attr("UserIsRequestor"), Some("true"));
    assert_eq!(peer.attr("NetworkAccessPointID"), Some("192.0.2.7"));
    assert_eq!(peer.attr("NetworkAccessPointTypeCode"), Some("2"));
    assert_eq!(peer.child("RoleIDCode").attr("csd-code"), Some("110153"));
    let ward = participants[1];
    assert_eq!(ward.attr("UserID"), Some("WARD"));
    assert_eq!(ward.child("RoleIDCode").attr("csd-code"), Some("110152"));

    let objects: Vec<_> = root.children("ParticipantObjectIdentification").collect();
    assert_eq!(objects.len(), 2);
    let study = objects[0];
    assert_eq!(study.attr("ParticipantObjectID"), Some("1.2.3"));
    let class = study
        .child("ParticipantObjectDescription")
        .child("SOPClass");
    assert_eq!(class.attr("NumberOfInstances"), Some("1"));
    assert_eq!(class.child("Instance").attr("UID"), Some("1.2.3.4.5"));
    let patient = objects[1];
    assert_eq!(patient.attr("ParticipantObjectID"), Some("PID-1"));
    assert_eq!(patient.child("ParticipantObjectName").text, "Doe^Jane");
}

#[test]
fn failed_query_carries_keys_and_reason() {
    let event = AuditEvent::new(Action::Query, peer())
        .with_outcome(Outcome::Failure {
            status: Some(0xA700),
            reason: "wildcard patient query refused".into(),
        })
        .with_detail(json!({
            "sop_class_uid": "1.2.840.10008.5.1.4.1.2.2.1",
            "keys": {"PatientName": "*"},
            "matches": 0,
        }));
    let root = parse(&to_dicom_audit_xml(&record(event), "WARD"));
    let id = root.child("EventIdentification");
    assert_eq!(id.attr("EventOutcomeIndicator"), Some("4"));
    assert_eq!(id.child("EventID").attr("csd-code"), Some("110112"));
    assert_eq!(
        id.child("EventOutcomeDescription").text,
        "wildcard patient query refused (status 0xA700)"
    );
    let query = root.child("ParticipantObjectIdentification");
    assert_eq!(
        query.child("ParticipantObjectIDTypeCode").attr("csd-code"),
        Some("110181")
    );
    assert_eq!(
        query.child("ParticipantObjectQuery").text,
        base64(br#"{"PatientName":"*"}"#)
    );
}

#[test]
fn security_alert_type_follows_detail() {
    let event = AuditEvent::new(Action::SecurityAlert, Actor::default())
        .with_detail(json!({"alert_type": "audit_recording_started"}));
    let root = parse(&to_dicom_audit_xml(&record(event), "WARD"));
    let id = root.child("EventIdentification");
    assert_eq!(id.child("EventTypeCode").attr("csd-code"), Some("110134"));
    // Ward raised it itself: it is the requestor, and there is no other participant.
    let participants: Vec<_> = root.children("ActiveParticipant").collect();
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].attr("UserIsRequestor"), Some("true"));
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), expected);
    }
}
