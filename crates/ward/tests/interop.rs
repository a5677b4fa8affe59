//! C-ECHO and C-STORE against the real `ward` binary with clients nobody here wrote (DCMTK,
//! pynetdicom) and with `ward store`; registry enforcement as seen on the wire.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ward_test_support::dicom::{CT_IMAGE_STORAGE, EXPLICIT_VR_LE, Synthetic};
use ward_test_support::raw::{self, ASSOCIATE_AC, ASSOCIATE_RJ, Answer, Raw};
use ward_test_support::{
    WardServer, data_dir_with_peers, dcmtk, python_script, stored_plaintext, ward,
};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn bin() -> &'static Path {
    Path::new(WARD)
}

fn standard_server() -> (tempfile::TempDir, WardServer) {
    let dir = data_dir_with_peers(
        bin(),
        &[
            ("STORESCU", "127.0.0.1", "echo,store"),
            ("ECHOSCU", "127.0.0.1", "echo"),
            ("FAR", "127.0.0.2", "echo,store"),
        ],
    );
    let server = WardServer::start(bin(), &dir.path().join("data"));
    (dir, server)
}

fn write_synthetic(dir: &Path, count: usize) -> (Vec<PathBuf>, Vec<Synthetic>) {
    let first = Synthetic::ct();
    let mut paths = Vec::new();
    let mut objects = Vec::new();
    for i in 0..count {
        let obj = if i == 0 {
            first.clone()
        } else {
            first.next_in_series()
        };
        let path = dir.join(format!("img{i:03}.dcm"));
        obj.write_part10(&path, None);
        paths.push(path);
        objects.push(obj);
    }
    (paths, objects)
}

fn instance_count(server: &WardServer) -> u64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use ward_index::Index;
        let index = ward_index::SqliteIndex::open(&server.data.join("index.sqlite"), false)
            .await
            .unwrap();
        let counts = index.counts().await.unwrap();
        index.close().await;
        counts.instances
    })
}

#[test]
fn dcmtk_echo_and_store() {
    let (_dir, server) = standard_server();
    let port = server.port.to_string();
    let echo = dcmtk("echoscu")
        .args(["-aet", "ECHOSCU", "-aec", "WARD", "127.0.0.1", &port])
        .output()
        .unwrap();
    assert!(
        echo.status.success(),
        "{}",
        String::from_utf8_lossy(&echo.stderr)
    );

    let files = tempfile::tempdir().unwrap();
    let (paths, _) = write_synthetic(files.path(), 5);
    let store = dcmtk("storescu")
        .args(["-aet", "STORESCU", "-aec", "WARD", "127.0.0.1", &port])
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        store.status.success(),
        "{}",
        String::from_utf8_lossy(&store.stderr)
    );
    assert_eq!(instance_count(&server), 5);

    // Sending the same objects again is idempotent.
    let again = dcmtk("storescu")
        .args(["-aet", "STORESCU", "-aec", "WARD", "127.0.0.1", &port])
        .args(&paths)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(instance_count(&server), 5);
}

#[test]
fn pynetdicom_echo_and_store() {
    let (_dir, server) = standard_server();
    let port = server.port.to_string();
    let echo = python_script("echo.py")
        .args(["127.0.0.1", &port, "ECHOSCU", "WARD"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&echo.stdout).trim(), "ACCEPTED 0x0");

    let files = tempfile::tempdir().unwrap();
    let (paths, objects) = write_synthetic(files.path(), 3);
    let out = python_script("store.py")
        .args(["127.0.0.1", &port, "STORESCU", "WARD"])
        .args(&paths)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for obj in &objects {
        assert!(
            stdout.contains(&format!("OK {}", obj.sop_instance)),
            "{stdout}"
        );
    }
    assert_eq!(instance_count(&server), 3);
}

#[test]
fn ward_store_sends_folders_recursively() {
    let (_dir, server) = standard_server();
    let files = tempfile::tempdir().unwrap();
    std::fs::create_dir(files.path().join("sub")).unwrap();
    write_synthetic(files.path(), 2);
    write_synthetic(&files.path().join("sub"), 3);
    std::fs::write(files.path().join("notes.txt"), "not DICOM").unwrap();
    let out = ward(
        bin(),
        &[
            "store",
            &server.addr(),
            files.path().to_str().unwrap(),
            "--aet",
            "STORESCU",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sent 5, failed 0, skipped 1"), "{stdout}");
    assert_eq!(instance_count(&server), 5);
}

/// Every way of not being a known peer gets the same bytes back: the reject is no oracle.
#[test]
fn rejections_are_identical_whatever_was_wrong() {
    let (_dir, server) = standard_server();
    let contexts: &[(u8, &str, &[&str])] = &[(1, "1.2.840.10008.1.1", &[EXPLICIT_VR_LE])];
    let mut answers = Vec::new();
    for (calling, called) in [
        ("NOBODY", "WARD"),   // unknown calling AE
        ("STORESCU", "PACS"), // wrong called AE
        ("STORESCU", "ANY-SCP"),
        ("FAR", "WARD"), // registered, but for 127.0.0.2 only
        ("ANY-SCP", "ANY-SCP"),
    ] {
        let mut raw = Raw::connect(&server.addr());
        let answer = raw.associate(calling, called, contexts);
        match &answer {
            Answer::Pdu(ASSOCIATE_RJ, body) => {
                // permanent (1), service user (1), no reason given (1)
                assert_eq!(body, &[0, 1, 1, 1], "{calling} -> {called}");
            }
            other => panic!("{calling} -> {called}: expected A-ASSOCIATE-RJ, got {other:?}"),
        }
        answers.push(answer);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));

    // DCMTK sees a rejection too.
    let out = dcmtk("echoscu")
        .args([
            "-aet",
            "NOBODY",
            "-aec",
            "WARD",
            "127.0.0.1",
            &server.port.to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // And the registered peer is served right after.
    let mut raw = Raw::connect(&server.addr());
    assert!(matches!(
        raw.associate("ECHOSCU", "WARD", contexts),
        Answer::Pdu(ASSOCIATE_AC, _)
    ));
    assert!(raw.release());
}

#[test]
fn operations_not_allowed_have_their_contexts_refused() {
    let (_dir, server) = standard_server();
    let mut raw = Raw::connect(&server.addr());
    let answer = raw.associate(
        "ECHOSCU",
        "WARD",
        &[
            (1, "1.2.840.10008.1.1", &[EXPLICIT_VR_LE]),
            (3, CT_IMAGE_STORAGE, &[EXPLICIT_VR_LE]),
        ],
    );
    let Answer::Pdu(ASSOCIATE_AC, body) = answer else {
        panic!("expected A-ASSOCIATE-AC, got {answer:?}");
    };
    let results = context_results(&body);
    assert_eq!(
        results,
        vec![(1, 0), (3, 1)],
        "echo accepted, storage refused (user rejection)"
    );

    // DCMTK's storescu from a peer allowed only echo cannot store.
    let files = tempfile::tempdir().unwrap();
    let (paths, _) = write_synthetic(files.path(), 1);
    let out = dcmtk("storescu")
        .args([
            "-aet",
            "ECHOSCU",
            "-aec",
            "WARD",
            "127.0.0.1",
            &server.port.to_string(),
        ])
        .args(&paths)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No Acceptable Presentation Contexts"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(instance_count(&server), 0);
}

#[test]
fn registry_changes_apply_without_restart() {
    let (_dir, server) = standard_server();
    let port = server.port.to_string();
    let echo = |aet: &str| {
        dcmtk("echoscu")
            .args(["-aet", aet, "-aec", "WARD", "127.0.0.1", &port])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!echo("LATECOMER"));
    server.cli(&[
        "ae",
        "add",
        "LATECOMER",
        "--host",
        "127.0.0.0/8",
        "--allow",
        "echo",
    ]);
    assert!(echo("LATECOMER"));
    server.cli(&["ae", "remove", "LATECOMER"]);
    assert!(!echo("LATECOMER"));
}

/// (context id, result) pairs from an A-ASSOCIATE-AC body.
fn context_results(body: &[u8]) -> Vec<(u8, u8)> {
    // Fixed part: protocol version (2), reserved (2), called (16), calling (16), reserved (32).
    let mut rest = &body[68..];
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let item_type = rest[0];
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let item = &rest[4..4 + len];
        if item_type == 0x21 {
            out.push((item[0], item[2]));
        }
        rest = &rest[4 + len..];
    }
    out
}

#[test]
fn raw_store_round_trip_keeps_the_bytes() {
    let (_dir, server) = standard_server();
    let obj = Synthetic::ct();
    let dataset = obj.dataset_bytes(EXPLICIT_VR_LE);
    let mut raw = Raw::connect(&server.addr());
    let answer = raw.associate(
        "STORESCU",
        "WARD",
        &[(1, CT_IMAGE_STORAGE, &[EXPLICIT_VR_LE])],
    );
    assert!(matches!(answer, Answer::Pdu(ASSOCIATE_AC, _)));
    let status = raw.c_store(
        1,
        &raw::c_store_rq(1, Some(CT_IMAGE_STORAGE), &obj.sop_instance),
        &dataset,
    );
    assert_eq!(status, Some(0));
    assert!(raw.release());

    let blob = only_blob(&server.data);
    let key = blob.file_name().unwrap().to_str().unwrap();
    let stored = stored_plaintext(&server.data, key);
    assert!(
        stored.ends_with(&dataset),
        "the data set is stored exactly as received"
    );
    assert_eq!(&stored[128..132], b"DICM");
    assert!(stored[..128].iter().all(|b| *b == 0));
}

fn only_blob(data: &Path) -> PathBuf {
    let blobs: Vec<PathBuf> = walk_files(&data.join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    blobs.into_iter().next().unwrap()
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
