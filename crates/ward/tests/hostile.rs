//! Hostile input over a real socket: each case gets a failure status or an abort, memory stays
//! bounded, nothing is stored, and the next association is served normally.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ward_test_support::dicom::{CT_IMAGE_STORAGE, EXPLICIT_VR_LE, Synthetic, executable_preamble};
use ward_test_support::raw::{self, ABORT, ASSOCIATE_AC, Answer, Raw};
use ward_test_support::{WardServer, data_dir_with_peers, dcmtk, stored_plaintext};

const WARD: &str = env!("CARGO_BIN_EXE_ward");
const VERIFICATION: &str = "1.2.840.10008.1.1";

fn server() -> (tempfile::TempDir, WardServer) {
    let bin = Path::new(WARD);
    let dir = data_dir_with_peers(bin, &[("ATTACKER", "127.0.0.1", "echo,store")]);
    let server = WardServer::start(bin, &dir.path().join("data"));
    (dir, server)
}

/// An association with CT storage on context 1 and verification on context 3.
fn associate(server: &WardServer) -> Raw {
    let mut raw = Raw::connect(&server.addr());
    let answer = raw.associate(
        "ATTACKER",
        "WARD",
        &[
            (1, CT_IMAGE_STORAGE, &[EXPLICIT_VR_LE]),
            (3, VERIFICATION, &[EXPLICIT_VR_LE]),
        ],
    );
    assert!(matches!(answer, Answer::Pdu(ASSOCIATE_AC, _)), "{answer:?}");
    raw
}

/// The server still works for a well-behaved peer, and its memory stayed bounded.
fn assert_still_serving(server: &WardServer) {
    let out = dcmtk("echoscu")
        .args([
            "-aet",
            "ATTACKER",
            "-aec",
            "WARD",
            "127.0.0.1",
            &server.port.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "echo after hostile input failed\n{}",
        server.log()
    );
    let peak = server.peak_rss_kib();
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
}

fn blob_count(server: &WardServer) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&server.data.join("blobs"))
}

fn store_status(
    server: &WardServer,
    command: &ward_dimse::command::Command,
    dataset: &[u8],
) -> Option<u16> {
    let mut raw = associate(server);
    let status = raw.c_store(1, command, dataset);
    if status.is_some() {
        assert!(raw.release());
    }
    status
}

#[test]
fn four_gigabyte_element_in_sixteen_bytes() {
    let (_dir, server) = server();
    let obj = Synthetic::ct();
    // (0009,0010) OB, reserved, length 0xFFFFFFF0, then 4 bytes where 4 GB were promised.
    let mut dataset = vec![
        0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF,
    ];
    dataset.extend_from_slice(&[1, 2, 3, 4]);
    let cmd = raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), &obj.sop_instance);
    assert_eq!(store_status(&server, &cmd, &dataset), Some(0xC000));
    assert_eq!(blob_count(&server), 0);
    assert_still_serving(&server);
}

#[test]
fn truncated_data_set() {
    let (_dir, server) = server();
    let obj = Synthetic::ct();
    let dataset = obj.dataset_bytes(EXPLICIT_VR_LE);
    let cmd = raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), &obj.sop_instance);
    assert_eq!(
        store_status(&server, &cmd, &dataset[..dataset.len() / 2]),
        Some(0xC000)
    );
    assert_eq!(blob_count(&server), 0);
    assert_still_serving(&server);
}

#[test]
fn path_like_uids_are_refused() {
    let (_dir, server) = server();
    // In the command…
    for bad in ["1.2/../3", "../../etc/passwd", "1.2.3/4", "1\\2"] {
        let mut obj = Synthetic::ct();
        obj.sop_instance = bad.into();
        let cmd = raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), bad);
        let status = store_status(&server, &cmd, &obj.dataset_bytes(EXPLICIT_VR_LE));
        assert_eq!(status, Some(0xA900), "{bad}");
    }
    // …and inside the data set.
    let mut obj = Synthetic::ct();
    obj.study = "../../../tmp/x".into();
    let cmd = raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), &obj.sop_instance);
    let status = store_status(&server, &cmd, &obj.dataset_bytes(EXPLICIT_VR_LE));
    assert!(matches!(status, Some(0xA900 | 0xC000)), "{status:?}");
    assert_eq!(blob_count(&server), 0);
    assert_still_serving(&server);
}

#[test]
fn sop_instance_uid_must_match_the_command() {
    let (_dir, server) = server();
    let obj = Synthetic::ct();
    let other = ward_dicom::generate_uid().to_string();
    let cmd = raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), &other);
    assert_eq!(
        store_status(&server, &cmd, &obj.dataset_bytes(EXPLICIT_VR_LE)),
        Some(0xA900)
    );
    assert_eq!(blob_count(&server), 0);
    assert_still_serving(&server);
}

#[test]
fn four_gigabyte_pdu_is_aborted() {
    let (_dir, server) = server();
    let mut raw = associate(&server);
    raw.send(&[0x04, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        .unwrap();
    assert!(matches!(raw.read(), Answer::Pdu(ABORT, _) | Answer::Closed));
    // Before association too.
    let mut raw = Raw::connect(&server.addr());
    raw.send(&[0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
    assert!(matches!(raw.read(), Answer::Pdu(ABORT, _) | Answer::Closed));
    assert_still_serving(&server);
}

#[test]
fn command_without_sop_class_uid() {
    let (_dir, server) = server();
    let obj = Synthetic::ct();
    let cmd = raw::c_store_rq(1, None, &obj.sop_instance);
    assert_eq!(
        store_status(&server, &cmd, &obj.dataset_bytes(EXPLICIT_VR_LE)),
        Some(0xC000)
    );
    assert_eq!(blob_count(&server), 0);
    assert_still_serving(&server);
}

#[test]
fn executable_preamble_is_never_stored() {
    let (_dir, server) = server();
    let files = tempfile::tempdir().unwrap();
    let obj = Synthetic::ct();
    let path = files.path().join("polyglot.dcm");
    obj.write_part10(&path, Some(&executable_preamble()));
    // A real client sends the data set of the polyglot; what Ward stores has a zero preamble.
    let out = dcmtk("storescu")
        .args([
            "-aet",
            "ATTACKER",
            "-aec",
            "WARD",
            "127.0.0.1",
            &server.port.to_string(),
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(blob_count(&server), 1);
    let blob = std::fs::read_dir(server.data.join("blobs"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .next()
        .unwrap()
        .file_name();
    let bytes = stored_plaintext(&server.data, blob.to_str().unwrap());
    assert!(
        bytes[..128].iter().all(|b| *b == 0),
        "preamble must be zeroed"
    );

    // A whole Part 10 file pushed as if it were a data set is not understood.
    let other = Synthetic::ct();
    let path = files.path().join("polyglot2.dcm");
    other.write_part10(&path, Some(&executable_preamble()));
    let whole = std::fs::read(&path).unwrap();
    let cmd = raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), &other.sop_instance);
    assert_eq!(store_status(&server, &cmd, &whole), Some(0xC000));
    assert_eq!(blob_count(&server), 1);
    assert_still_serving(&server);
}

#[test]
fn different_content_under_a_stored_uid_is_refused() {
    let (_dir, server) = server();
    let obj = Synthetic::ct();
    let cmd = raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), &obj.sop_instance);
    assert_eq!(
        store_status(&server, &cmd, &obj.dataset_bytes(EXPLICIT_VR_LE)),
        Some(0)
    );
    let mut changed = obj.clone();
    changed.pixel_seed = 99;
    assert_eq!(
        store_status(&server, &cmd, &changed.dataset_bytes(EXPLICIT_VR_LE)),
        Some(0x0111)
    );
    // The identical object again is fine.
    assert_eq!(
        store_status(&server, &cmd, &obj.dataset_bytes(EXPLICIT_VR_LE)),
        Some(0)
    );
    assert_eq!(blob_count(&server), 1);
}

#[test]
fn data_out_of_sequence_and_unknown_contexts_abort() {
    let (_dir, server) = server();
    // Data before any command.
    let mut raw = associate(&server);
    raw.pdv(1, false, true, b"0123").unwrap();
    assert!(matches!(raw.read(), Answer::Pdu(ABORT, _) | Answer::Closed));
    // A PDV on a context that was never accepted.
    let mut raw = associate(&server);
    raw.pdv(9, true, true, b"0123").unwrap();
    assert!(matches!(raw.read(), Answer::Pdu(ABORT, _) | Answer::Closed));
    // A PDV item shorter than its own header.
    let mut raw = associate(&server);
    raw.send(&[0x04, 0, 0, 0, 0, 5, 0, 0, 0, 1, 1]).unwrap();
    assert!(matches!(raw.read(), Answer::Pdu(ABORT, _) | Answer::Closed));
    // An unknown PDU type.
    let mut raw = associate(&server);
    raw.send(&[0x42, 0, 0, 0, 0, 0]).unwrap();
    assert!(matches!(raw.read(), Answer::Pdu(ABORT, _) | Answer::Closed));
    assert_still_serving(&server);
}

#[test]
fn silent_connections_do_not_hold_the_server() {
    let (_dir, server) = server();
    // Connections that never speak: the server keeps serving others meanwhile.
    let _silent: Vec<Raw> = (0..20).map(|_| Raw::connect(&server.addr())).collect();
    assert_still_serving(&server);
}

#[test]
fn command_sets_split_across_pdvs_are_reassembled() {
    let (_dir, server) = server();
    let obj = Synthetic::ct();
    let cmd = raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), &obj.sop_instance).encode();
    let mut raw = associate(&server);
    let (a, b) = cmd.split_at(cmd.len() / 3);
    let (b, c) = b.split_at(b.len() / 2);
    raw.pdv(1, true, false, a).unwrap();
    raw.pdv(1, true, false, b).unwrap();
    raw.pdv(1, true, true, c).unwrap();
    let dataset = obj.dataset_bytes(EXPLICIT_VR_LE);
    let (d1, d2) = dataset.split_at(100);
    raw.pdv(1, false, false, d1).unwrap();
    raw.pdv(1, false, true, d2).unwrap();
    assert_eq!(raw.read_status(), Some(0));
    assert!(raw.release());
    assert_eq!(blob_count(&server), 1);
}

#[test]
fn associations_beyond_the_limit_are_rejected_as_transient() {
    let bin = Path::new(WARD);
    let dir = data_dir_with_peers(bin, &[("ATTACKER", "127.0.0.1", "echo,store")]);
    let data = dir.path().join("data");
    let config = data.join("ward.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("max_associations = 64", "max_associations = 2"),
    )
    .unwrap();
    let server = WardServer::start(bin, &data);
    let held: Vec<Raw> = (0..2).map(|_| associate(&server)).collect();
    let mut third = Raw::connect(&server.addr());
    let answer = third.associate("ATTACKER", "WARD", &[(1, VERIFICATION, &[EXPLICIT_VR_LE])]);
    // transient (2), service provider presentation (3), local limit exceeded (2)
    assert_eq!(answer, Answer::Pdu(raw::ASSOCIATE_RJ, vec![0, 2, 3, 2]));
    drop(held);
    // Slots come back once those connections close.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_still_serving(&server);
}

/// Guessing AE titles trips the back-off: after the threshold, connections from that address
/// are closed unanswered for a while, and the trip is a security alert in the audit trail.
#[test]
fn repeated_failed_associations_back_off() {
    let bin = Path::new(WARD);
    let dir = data_dir_with_peers(bin, &[("ATTACKER", "127.0.0.1", "echo")]);
    let data = dir.path().join("data");
    let config = data.join("ward.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "failed_associations_threshold = 10",
            "failed_associations_threshold = 3",
        ),
    )
    .unwrap();
    let server = WardServer::start(bin, &data);
    let contexts: &[(u8, &str, &[&str])] = &[(1, VERIFICATION, &[EXPLICIT_VR_LE])];
    for guess in ["ORTHANC", "DCM4CHEE", "ANY-SCP"] {
        let mut raw = Raw::connect(&server.addr());
        assert!(matches!(
            raw.associate(guess, "WARD", contexts),
            Answer::Pdu(raw::ASSOCIATE_RJ, _)
        ));
    }
    // Now even the registered title is turned away from this address.
    let mut raw = Raw::connect(&server.addr());
    assert_eq!(raw.associate("ATTACKER", "WARD", contexts), Answer::Closed);
    assert!(server.stop().success());
    let log = ward_test_support::ward_ok(
        bin,
        &[
            "audit-log",
            "show",
            "--json",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert!(
        log.contains("security_alert") && log.contains("failed associations"),
        "{log}"
    );
}
