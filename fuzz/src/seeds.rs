//! Seeds made by Ward's own encoders: what Ward itself sends (association PDUs, command sets,
//! P-DATA fragments) and the objects and identifiers of the shared matching table. Each seed
//! starts with the target's configuration byte.

use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationAC, AssociationRJ, AssociationRJResult,
    AssociationRJServiceUserReason, AssociationRJSource, AssociationRQ, PDataValueType, Pdu,
    PresentationContextProposed, PresentationContextResult, PresentationContextResultReason,
    RequestorRoles, UserIdentity, UserIdentityType, UserVariableItem,
};
use ward_dimse::command::{Command, CommandField, tag};
use ward_dimse::negotiation::{self, APPLICATION_CONTEXT, VERIFICATION};
use ward_dimse::pdu;
use ward_query::QueryModel;

use crate::{block_on, ts};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const STUDY_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
const STUDY_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";
const STUDY_GET: &str = "1.2.840.10008.5.1.4.1.2.2.3";

fn with_config(config: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(config);
    out.extend_from_slice(body);
    out
}

/// Command sets Ward sends or answers, as `Command::encode` writes them.
fn commands() -> Vec<Command> {
    let mut echo = Command::new(CommandField::CEchoRq, VERIFICATION);
    echo.set_u16(tag::MESSAGE_ID, 1);
    let echo_rsp = Command::response(CommandField::CEchoRsp, VERIFICATION, 1, 0);
    let mut store = Command::new(CommandField::CStoreRq, CT);
    store
        .set_u16(tag::MESSAGE_ID, 7)
        .set_u16(tag::PRIORITY, 0)
        .set_u16(tag::COMMAND_DATA_SET_TYPE, 0x0000)
        .set_uid(
            tag::AFFECTED_SOP_INSTANCE_UID,
            "1.2.826.0.1.3680043.2.1125.1",
        )
        .set_text(tag::MOVE_ORIGINATOR_AE_TITLE, "VIEWER")
        .set_u16(tag::MOVE_ORIGINATOR_MESSAGE_ID, 3);
    let mut store_rsp = Command::response(CommandField::CStoreRsp, CT, 7, 0xA700);
    store_rsp
        .set_uid(tag::AFFECTED_SOP_INSTANCE_UID, "1.2.3.4")
        .set_text(tag::ERROR_COMMENT, "out of resources");
    let mut find = Command::new(CommandField::CFindRq, STUDY_FIND);
    find.set_u16(tag::MESSAGE_ID, 2)
        .set_u16(tag::PRIORITY, 0)
        .set_u16(tag::COMMAND_DATA_SET_TYPE, 0x0001);
    let mut mv = Command::new(CommandField::CMoveRq, STUDY_MOVE);
    mv.set_u16(tag::MESSAGE_ID, 3)
        .set_u16(tag::PRIORITY, 1)
        .set_text(tag::MOVE_DESTINATION, "STORESCP")
        .set_u16(tag::COMMAND_DATA_SET_TYPE, 0x0001);
    let mut get_rsp = Command::response(CommandField::Other(0x8010), STUDY_GET, 4, 0xFF00);
    get_rsp
        .set_u16(tag::REMAINING_SUBOPERATIONS, 3)
        .set_u16(tag::COMPLETED_SUBOPERATIONS, 1)
        .set_u16(tag::FAILED_SUBOPERATIONS, 0)
        .set_u16(tag::WARNING_SUBOPERATIONS, 0);
    let mut cancel = Command::default();
    cancel
        .set_u16(tag::COMMAND_FIELD, CommandField::CCancelRq.to_u16())
        .set_u16(tag::MESSAGE_ID_BEING_RESPONDED_TO, 2)
        .set_u16(tag::COMMAND_DATA_SET_TYPE, 0x0101);
    vec![echo, echo_rsp, store, store_rsp, find, mv, get_rsp, cancel]
}

/// `command`: the configuration byte is unused; the command sets as encoded.
pub fn command() -> Vec<Vec<u8>> {
    commands()
        .iter()
        .map(|c| with_config(0, &c.encode()))
        .collect()
}

fn write_pdu(pdu: &Pdu) -> Vec<u8> {
    let mut out = Vec::new();
    block_on(pdu::write_pdu(&mut out, pdu)).expect("Ward's own PDUs encode");
    out
}

/// `pdu`: association negotiation as Ward's requestor and acceptor write it, release and abort,
/// and P-DATA carrying command sets and a fragmented data set; alone and as one stream.
pub fn pdu() -> Vec<Vec<u8>> {
    let mut user_variables = negotiation::our_user_variables(16384);
    user_variables.push(UserVariableItem::ScuScpRoleSelectionSubItem(
        CT.to_owned(),
        RequestorRoles {
            scu: false,
            scp: true,
        },
    ));
    user_variables.push(UserVariableItem::UserIdentityItem(UserIdentity::new(
        true,
        UserIdentityType::UsernamePassword,
        b"alice".to_vec(),
        b"correct horse".to_vec(),
    )));
    let rq = Pdu::AssociationRQ(AssociationRQ {
        protocol_version: 1,
        calling_ae_title: "VIEWER".to_owned(),
        called_ae_title: "WARD".to_owned(),
        application_context_name: APPLICATION_CONTEXT.to_owned(),
        presentation_contexts: vec![
            PresentationContextProposed {
                id: 1,
                abstract_syntax: VERIFICATION.to_owned(),
                transfer_syntaxes: vec![ts::IMPLICIT_LE.to_owned()],
            },
            PresentationContextProposed {
                id: 3,
                abstract_syntax: CT.to_owned(),
                transfer_syntaxes: vec![
                    ts::EXPLICIT_LE.to_owned(),
                    ts::IMPLICIT_LE.to_owned(),
                    ts::JPEG_BASELINE.to_owned(),
                ],
            },
        ],
        user_variables,
    });
    let ac = Pdu::AssociationAC(AssociationAC {
        protocol_version: 1,
        calling_ae_title: "VIEWER".to_owned(),
        called_ae_title: "WARD".to_owned(),
        application_context_name: APPLICATION_CONTEXT.to_owned(),
        presentation_contexts: vec![
            PresentationContextResult {
                id: 1,
                reason: PresentationContextResultReason::Acceptance,
                transfer_syntax: ts::IMPLICIT_LE.to_owned(),
            },
            PresentationContextResult {
                id: 3,
                reason: PresentationContextResultReason::UserRejection,
                transfer_syntax: ts::IMPLICIT_LE.to_owned(),
            },
        ],
        user_variables: negotiation::our_user_variables(65536),
    });
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Permanent,
        source: AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::NoReasonGiven),
    });
    let abort = Pdu::AbortRQ {
        source: AbortRQSource::ServiceProvider(AbortRQServiceProviderReason::InvalidPduParameter),
    };
    let mut singles: Vec<Vec<u8>> = [rq, ac, rj, Pdu::ReleaseRQ, Pdu::ReleaseRP, abort]
        .iter()
        .map(write_pdu)
        .collect();
    for command in commands() {
        let mut out = Vec::new();
        block_on(pdu::write_fragments(
            &mut out,
            1,
            PDataValueType::Command,
            &command.encode(),
            16378,
        ))
        .expect("writes to a Vec succeed");
        singles.push(out);
    }
    // A data set split over three PDVs, as Ward fragments for a peer with a small maximum.
    let dataset = ward_query::conformance::corpus()[0].dataset_bytes(ts::EXPLICIT_LE);
    let mut fragmented = Vec::new();
    block_on(pdu::write_fragments(
        &mut fragmented,
        3,
        PDataValueType::Data,
        &dataset,
        dataset.len().div_ceil(3),
    ))
    .expect("writes to a Vec succeed");
    let whole_stream = [
        singles[0].clone(),
        singles[6].clone(),
        singles[8].clone(),
        fragmented.clone(),
        singles[3].clone(),
    ]
    .concat();
    singles.push(fragmented);
    singles.push(whole_stream);
    // Configuration 0x00 reads in 1-byte chunks, 0x0F in large ones (see the target).
    singles
        .iter()
        .flat_map(|s| [with_config(0x03, s), with_config(0x0F, s)])
        .collect()
}

/// The matching table's objects in the native syntaxes, written by dicom-object (as the matching
/// tests write them), converted by `transcode_native`, and deflated.
fn objects() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for instance in ward_query::conformance::corpus().iter().take(6) {
        let explicit = instance.dataset_bytes(ts::EXPLICIT_LE);
        out.push((ts::IMPLICIT_LE, instance.dataset_bytes(ts::IMPLICIT_LE)));
        if let Ok(be) = ward_dicom::transcode_native(&explicit, ts::EXPLICIT_LE, ts::EXPLICIT_BE) {
            out.push((ts::EXPLICIT_BE, be));
        }
        out.push((ts::DEFLATED_LE, deflate(&explicit)));
        out.push((ts::EXPLICIT_LE, explicit));
    }
    out
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("writes to a Vec succeed");
    encoder.finish().expect("writes to a Vec succeed")
}

/// `dataset`: the matching table's objects, and a small RLE image (the pixel seed).
pub fn dataset() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = objects()
        .into_iter()
        .filter_map(|(uid, bytes)| Some(with_config(ts::selector(ts::DATASET, uid)?, &bytes)))
        .collect();
    let rle = ts::selector(ts::DATASET, ts::RLE).expect("RLE is in the table");
    out.push(with_config(rle, &rle_image()));
    out
}

/// The `identifier` configuration byte: bits 0–1 choose the transfer syntax, bit 2 the model.
pub fn identifier_config(ts_index: u8, model: QueryModel) -> u8 {
    (ts_index & 0x03)
        | if model == QueryModel::PatientRoot {
            0x04
        } else {
            0
        }
}

/// `identifier`: every identifier of the matching table in every syntax a C-FIND may use.
pub fn identifier() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for case in ward_query::conformance::cases() {
        let explicit = case.encode(ts::EXPLICIT_LE);
        let mut encodings = vec![
            (ts::IMPLICIT_LE, case.encode(ts::IMPLICIT_LE)),
            (ts::DEFLATED_LE, deflate(&explicit)),
        ];
        if let Ok(be) = ward_dicom::transcode_native(&explicit, ts::EXPLICIT_LE, ts::EXPLICIT_BE) {
            encodings.push((ts::EXPLICIT_BE, be));
        }
        encodings.push((ts::EXPLICIT_LE, explicit));
        for (uid, bytes) in encodings {
            let index = ts::selector(ts::IDENTIFIER, uid).expect("in the table");
            out.push(with_config(identifier_config(index, case.model), &bytes));
        }
    }
    out
}

/// `pixels`: a 4×2 8-bit monochrome RLE image, one frame, written by hand (Ward has no RLE
/// encoder); the JPEG seeds come from pydicom's test files.
pub fn pixels() -> Vec<Vec<u8>> {
    let rle = ts::selector(ts::PIXELS, ts::RLE).expect("RLE is in the table");
    ts::NATIVE_TARGETS
        .iter()
        .enumerate()
        .map(|(to, _)| with_config(rle | ((to as u8) << 3), &rle_image()))
        .collect()
}

/// An explicit VR little endian element with a short (16-bit) length.
fn short(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = [group.to_le_bytes(), element.to_le_bytes()].concat();
    out.extend_from_slice(vr);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn item(len: u32) -> Vec<u8> {
    [
        &0xFFFEu16.to_le_bytes()[..],
        &0xE000u16.to_le_bytes(),
        &len.to_le_bytes(),
    ]
    .concat()
}

fn rle_image() -> Vec<u8> {
    // One segment: a literal run of 8 bytes (header 7), padded to even length.
    let mut fragment = vec![0u8; 64];
    fragment[..4].copy_from_slice(&1u32.to_le_bytes());
    fragment[4..8].copy_from_slice(&64u32.to_le_bytes());
    fragment.extend_from_slice(&[7, 0, 32, 64, 96, 128, 160, 192, 255, 0]);
    let mut out = [
        short(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"),
        short(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"),
        short(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),
        short(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),
        short(0x0028, 0x0002, b"US", &1u16.to_le_bytes()),
        short(0x0028, 0x0004, b"CS", b"MONOCHROME2 "),
        short(0x0028, 0x0010, b"US", &2u16.to_le_bytes()),
        short(0x0028, 0x0011, b"US", &4u16.to_le_bytes()),
        short(0x0028, 0x0100, b"US", &8u16.to_le_bytes()),
        short(0x0028, 0x0101, b"US", &8u16.to_le_bytes()),
        short(0x0028, 0x0102, b"US", &7u16.to_le_bytes()),
        short(0x0028, 0x0103, b"US", &0u16.to_le_bytes()),
    ]
    .concat();
    // Pixel Data, OB, undefined length: an empty offset table, the fragment, the delimiter.
    out.extend_from_slice(&[
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    out.extend(item(0));
    out.extend(item(fragment.len() as u32));
    out.extend(fragment);
    out.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    out
}

/// `qido`: the matching table's queries at the study, series and image levels, written as
/// QIDO-RS parameters (`ggggeeee=value`, `ssssssss.ggggeeee=value` for a sequence item's key,
/// UID lists comma-separated), and the query strings PS3.18's examples and viewers send.
pub fn qido() -> Vec<Vec<u8>> {
    use ward_query::Level;
    use ward_query::conformance::CaseKey;

    // Configuration bytes of the `qido` target: route (bits 0–2), percent-encoded (bit 3),
    // path UIDs from the input (bit 4).
    let route = |level: Level| match level {
        Level::Patient | Level::Study => 0u8,
        Level::Series => 4,
        Level::Image => 5,
    };
    let hex = |tag: (u16, u16)| format!("{:04X}{:04X}", tag.0, tag.1);
    let text = |value: &str, vr: &dyn std::fmt::Debug| {
        if format!("{vr:?}") == "UI" {
            value.replace('\\', ",")
        } else {
            value.to_owned()
        }
    };
    let mut out = Vec::new();
    for case in ward_query::conformance::cases() {
        if case.model != QueryModel::StudyRoot {
            continue;
        }
        let mut params = Vec::new();
        for key in &case.keys {
            match key {
                CaseKey::Value(tag, vr, value) => {
                    params.push(format!("{}={}", hex((tag.0, tag.1)), text(value, vr)))
                }
                CaseKey::Item(outer, keys) => {
                    for (tag, vr, value) in keys {
                        params.push(format!(
                            "{}.{}={}",
                            hex((outer.0, outer.1)),
                            hex((tag.0, tag.1)),
                            text(value, vr)
                        ));
                    }
                }
            }
        }
        let query = params.join("&");
        out.push(with_config(route(case.level), query.as_bytes()));
        out.push(with_config(route(case.level) | 0x08, query.as_bytes()));
    }
    let examples: &[(u8, &str)] = &[
        (0, "PatientID=11235813&StudyDate=20130509"),
        (
            0,
            "PatientName=DOE%5EJ*&limit=25&offset=50&fuzzymatching=true",
        ),
        (
            0,
            "StudyDate=20200101-20241231&ModalitiesInStudy=CT&includefield=all",
        ),
        (
            0,
            "AccessionNumber=A%3F12*&includefield=00081030,StudyDescription,PatientAge",
        ),
        (
            0,
            "ProcedureCodeSequence.CodeValue=T-1234&PatientID=PAT-001",
        ),
        (
            1,
            "Modality=MR&SeriesNumber=3&includefield=BodyPartExamined",
        ),
        (2, "SOPClassUID=1.2.840.10008.5.1.4.1.1.2&InstanceNumber=1"),
        (3, "includefield=all&limit=1"),
        (
            4,
            "StudyInstanceUID=1.2.3.4,1.2.3.5&SeriesInstanceUID=1.2.3.4.1",
        ),
        (5, "SeriesInstanceUID=1.2.3.4.1&SOPInstanceUID=1.2.3.4.1.1"),
        (0x11, "1.2.3.4/1.2.3.4.1?PatientName=*"),
        (0x13, "1.2.3.4/1.2.3.4.1?SOPInstanceUID=1.2.3&limit=10"),
        (
            0x08,
            "PatientName=M\u{fc}ller^J\u{fc}rgen&PatientBirthDate=-19700101",
        ),
        (0, "0020000D=&00100010=*&00080061=CT%5CMR"),
    ];
    for (config, query) in examples {
        out.push(with_config(*config, query.as_bytes()));
    }
    out
}

/// The boundary the `stow` target's requests declare.
pub const STOW_BOUNDARY: &str = "WardFuzzBoundary";

/// A STOW-RS body: one part per `(content type, bytes)`, `None` for a part without headers,
/// closed by the final delimiter when `closed`.
pub fn multipart(parts: &[(Option<&str>, &[u8])], closed: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (content_type, bytes) in parts {
        body.extend_from_slice(format!("--{STOW_BOUNDARY}\r\n").as_bytes());
        if let Some(content_type) = content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    if closed {
        body.extend_from_slice(format!("--{STOW_BOUNDARY}--\r\n").as_bytes());
    }
    body
}

/// The study the `stow` target posts to when its configuration byte's bit 0 is set: the
/// matching table's first study.
pub fn stow_study() -> &'static str {
    ward_query::conformance::corpus()[0].study_instance_uid
}

/// The matching table's objects as Part 10 files, as a modality sends them over STOW-RS.
pub fn part10_objects() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, instance) in ward_query::conformance::corpus().iter().take(6).enumerate() {
        let syntax = match i % 3 {
            0 => ts::EXPLICIT_LE,
            1 => ts::IMPLICIT_LE,
            _ => ts::DEFLATED_LE,
        };
        let explicit = instance.dataset_bytes(ts::EXPLICIT_LE);
        let dataset = match syntax {
            ts::DEFLATED_LE => deflate(&explicit),
            ts::IMPLICIT_LE => instance.dataset_bytes(ts::IMPLICIT_LE),
            _ => explicit,
        };
        let uid = |s: &str| ward_types::Uid::parse(s).expect("the matching table's UIDs are valid");
        let mut file = Vec::new();
        ward_dicom::write_part10_header(
            &mut file,
            &uid(instance.sop_class_uid),
            &uid(instance.sop_instance_uid),
            &uid(syntax),
        )
        .expect("writes to a Vec succeed");
        file.extend_from_slice(&dataset);
        out.push(file);
    }
    out
}

/// `stow`: bodies of one and several parts of the matching table's objects, posted to
/// `/studies` and to their study's URL, whole and in small chunks; parts without headers, of
/// another media type, twice the same object; and bodies cut short, unclosed or empty.
/// Configuration byte: bit 0 posts to the study's URL, bits 1–3 choose the chunk size, bit 4
/// takes the Content-Type from the input's first line (see the target).
pub fn stow() -> Vec<Vec<u8>> {
    const DICOM: Option<&str> = Some("application/dicom");
    let files = part10_objects();
    let mut out = Vec::new();
    for file in &files {
        out.push(with_config(0, &multipart(&[(DICOM, file)], true)));
    }
    let all: Vec<_> = files.iter().map(|f| (DICOM, &f[..])).collect();
    let body = multipart(&all, true);
    for config in [0x00, 0x01, 0x02, 0x0B, 0x0E] {
        out.push(with_config(config, &body));
    }
    out.push(with_config(
        0,
        &multipart(&[(None, &files[0]), (DICOM, &files[0])], true),
    ));
    out.push(with_config(
        0,
        &multipart(&[(DICOM, &files[1]), (Some("text/plain"), b"hello")], true),
    ));
    out.push(with_config(
        0,
        &multipart(&[(Some("text/plain"), b"hello")], true),
    ));
    out.push(with_config(0, &multipart(&[(DICOM, &files[2])], false)));
    let cut = multipart(&[(DICOM, &files[0])], true);
    out.push(with_config(0, &cut[..cut.len() / 2]));
    out.push(with_config(0, &cut[..200]));
    out.push(with_config(0, &multipart(&[], true)));
    out.push(with_config(0, &multipart(&[(DICOM, b"")], true)));
    let mut preamble = b"a preamble to ignore\r\n".to_vec();
    preamble.extend(multipart(&[(DICOM, &files[3])], true));
    preamble.extend_from_slice(b"an epilogue\r\n");
    out.push(with_config(0x06, &preamble));
    // Over the target's body limit (48 KiB): a stored part, then one too large; whole (with
    // its length) and streamed.
    let mut large = files[5].clone();
    large.resize(50 << 10, 0);
    let oversized = multipart(&[(DICOM, &files[5]), (DICOM, &large)], true);
    out.push(with_config(0x00, &oversized));
    out.push(with_config(0x0C, &oversized));
    let mut typed =
        format!("multipart/related; type=\"application/dicom\"; boundary=\"{STOW_BOUNDARY}\"\n")
            .into_bytes();
    typed.extend(multipart(&[(DICOM, &files[4])], true));
    out.push(with_config(0x10, &typed));
    out
}
