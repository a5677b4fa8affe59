//! `kill -9` in the middle of concurrent transfers, C-STORE and STOW-RS together: after a
//! restart every object a real client saw acknowledged is in the archive, byte for byte,
//! nothing unacknowledged lingers, and `ward verify` finds nothing wrong.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use ward_index::Index;
use ward_test_support::dicom::Synthetic;
use ward_test_support::{
    WardServer, data_dir_with_peers, master_keys, python_script, stored_plaintext,
};

const WARD: &str = env!("CARGO_BIN_EXE_ward");
const ROUNDS: usize = 20;
const CLIENTS: usize = 2;
const FILES_PER_CLIENT: usize = 40;

struct Client {
    child: Courier,
    acked: Arc<Mutex<Vec<String>>>,
}

/// What carries a client's transfers: a pynetdicom process, or a thread of this test.
enum Courier {
    Process(Child),
    Thread(Option<std::thread::JoinHandle<()>>),
}

impl Courier {
    fn wait(&mut self) {
        match self {
            Courier::Process(child) => {
                let _ = child.wait();
            }
            Courier::Thread(handle) => {
                if let Some(handle) = handle.take() {
                    let _ = handle.join();
                }
            }
        }
    }
}

fn start_client(server: &WardServer, files: &[PathBuf]) -> Client {
    let mut child = python_script("store.py")
        .args(["127.0.0.1", &server.port.to_string(), "CRASHER", "WARD"])
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&acked);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(uid) = line.strip_prefix("OK ") {
                sink.lock().unwrap().push(uid.to_owned());
            }
        }
    });
    Client {
        child: Courier::Process(child),
        acked,
    }
}

/// STOW-RS, one object per request, on its own thread: what a 200 acknowledged.
fn start_stow(server: &WardServer, token: &str, files: Vec<(String, PathBuf)>) -> Client {
    let web = server.web();
    let bearer = format!("Bearer {token}");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&acked);
    let handle = std::thread::spawn(move || {
        for (uid, path) in files {
            let mut body = b"--crash\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
            body.extend_from_slice(&std::fs::read(path).unwrap());
            body.extend_from_slice(b"\r\n--crash--\r\n");
            let response = web.send(
                "POST",
                "/dicom-web/studies",
                &[
                    ("Authorization", &bearer),
                    (
                        "Content-Type",
                        "multipart/related; type=\"application/dicom\"; boundary=crash",
                    ),
                ],
                &body,
            );
            if response.status != 200 {
                return;
            }
            sink.lock().unwrap().push(uid);
        }
    });
    Client {
        child: Courier::Thread(Some(handle)),
        acked,
    }
}

#[test]
fn acknowledged_objects_survive_kill_9() {
    let bin = Path::new(WARD);
    let dir = data_dir_with_peers(bin, &[("CRASHER", "127.0.0.1", "store")]);
    let data = dir.path().join("data");
    let files_dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    // SOP Instance UID → the file that was sent.
    let mut sent: HashMap<String, PathBuf> = HashMap::new();
    let mut all_acked: Vec<String> = Vec::new();

    let mut token = String::new();
    let mut stow_acked = 0;
    for round in 0..ROUNDS {
        let server = WardServer::start(bin, &data);
        if token.is_empty() {
            token = server.token("crash-stow", "modality");
        }
        if round > 0 {
            assert!(
                server.log().contains("recovered after an unclean stop"),
                "restart after kill -9 must run recovery:\n{}",
                server.log()
            );
            check_archive(bin, &data, &all_acked, &sent);
        }
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let mut base = Synthetic::ct();
            base.rows = 256;
            base.columns = 256;
            let mut files = Vec::new();
            for i in 0..FILES_PER_CLIENT {
                let obj = base.next_in_series();
                let path = files_dir.path().join(format!("r{round}c{c}i{i}.dcm"));
                obj.write_part10(&path, None);
                sent.insert(obj.sop_instance.clone(), path.clone());
                files.push(path);
            }
            clients.push(start_client(&server, &files));
        }
        let mut base = Synthetic::ct();
        base.rows = 256;
        base.columns = 256;
        let stowed = (0..FILES_PER_CLIENT)
            .map(|i| {
                let obj = base.next_in_series();
                let path = files_dir.path().join(format!("r{round}stow{i}.dcm"));
                obj.write_part10(&path, None);
                sent.insert(obj.sop_instance.clone(), path.clone());
                (obj.sop_instance, path)
            })
            .collect();
        clients.push(start_stow(&server, &token, stowed));
        // Kill once the clients are well into their transfers.
        let target = rng.random_range(3..FILES_PER_CLIENT * CLIENTS - 10);
        let deadline = Instant::now() + Duration::from_secs(60);
        while clients
            .iter()
            .map(|c| c.acked.lock().unwrap().len())
            .sum::<usize>()
            < target
        {
            assert!(
                Instant::now() < deadline,
                "clients made no progress:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..30)));
        server.kill9();
        for mut c in clients {
            c.child.wait();
            let acked = c.acked.lock().unwrap();
            if matches!(c.child, Courier::Thread(_)) {
                stow_acked += acked.len();
            }
            all_acked.extend(acked.iter().cloned());
        }
    }

    // Restart once more, let recovery run, stop cleanly, then inspect the archive.
    let server = WardServer::start(bin, &data);
    assert!(server.stop().success());
    check_archive(bin, &data, &all_acked, &sent);
    assert_eq!(count_files(&data.join("spool")), 0, "spool left behind");
    assert!(
        stow_acked > 0,
        "no STOW-RS request was acknowledged before a kill"
    );
    println!(
        "{ROUNDS} rounds: {} acknowledged objects ({stow_acked} by STOW-RS) verified after kill -9",
        all_acked.len()
    );
}

/// Every acknowledged object is indexed and byte-identical to what was sent, every blob is
/// indexed and every row has its blob (nothing half-done), and `ward verify` is clean. Safe
/// beside a running server.
fn check_archive(bin: &Path, data: &Path, acked: &[String], sent: &HashMap<String, PathBuf>) {
    let verify = ward_test_support::ward(bin, &["verify", "--data", data.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "ward verify:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let index = ward_index::SqliteIndex::open(&data.join("index.sqlite"), false)
            .await
            .unwrap();
        for uid in acked {
            let row = index
                .instance(&uid.parse().unwrap())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged {uid} is missing"));
            let stored = stored_plaintext(data, &row.blob_key);
            let original = std::fs::read(&sent[uid]).unwrap();
            assert!(
                stored == original,
                "{uid}: stored bytes differ from the file sent"
            );
        }
        let counts = index.counts().await.unwrap();
        let blobs = count_files(&data.join("blobs"));
        assert_eq!(
            counts.instances as usize, blobs,
            "blobs and index rows disagree"
        );
        assert!(counts.instances as usize >= acked.len());
        index.close().await;
    });
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// After a power cut the index may have lost the last rows of acknowledged objects (its
/// commits do not wait for stable storage), never their blobs: recovery indexes every blob
/// without a row that checks out, and removes the ones that do not (torn or foreign files).
#[test]
fn recovery_indexes_blobs_whose_rows_were_lost() {
    let bin = Path::new(WARD);
    // An object stored in another archive gives a blob exactly as Ward writes it.
    let donor = data_dir_with_peers(bin, &[("CRASHER", "127.0.0.1", "store")]);
    let server = WardServer::start(bin, &donor.path().join("data"));
    let files = tempfile::tempdir().unwrap();
    let obj = Synthetic::ct();
    obj.write_part10(&files.path().join("a.dcm"), None);
    let out = ward_test_support::ward(
        bin,
        &[
            "store",
            &server.addr(),
            files.path().to_str().unwrap(),
            "--aet",
            "CRASHER",
        ],
    );
    assert!(out.status.success());
    server.stop();
    let donor_blobs = donor.path().join("data").join("blobs");
    let blob = walk(&donor_blobs).pop().unwrap();
    let relative = blob.strip_prefix(&donor_blobs).unwrap().to_owned();

    // The victim: the blob is there, its row is not, and the last run did not stop cleanly.
    // It is the same archive as far as keys go: it has the donor's master key.
    let victim = data_dir_with_peers(bin, &[]);
    let data = victim.path().join("data");
    std::fs::copy(master_keys(&donor.path().join("data")), master_keys(&data)).unwrap();
    let target = data.join("blobs").join(&relative);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(&blob, &target).unwrap();
    // A torn blob: a name that its content does not hash to.
    let torn = data.join("blobs").join("ab").join("ab".repeat(32));
    std::fs::create_dir_all(torn.parent().unwrap()).unwrap();
    std::fs::write(&torn, &std::fs::read(&blob).unwrap()[..1000]).unwrap();
    std::fs::write(data.join("ward.pid"), "1\n").unwrap();

    let server = WardServer::start(bin, &data);
    let log = server.log();
    assert!(log.contains("orphan_blobs_indexed=1"), "{log}");
    assert!(log.contains("orphan_blobs_removed=1"), "{log}");
    assert!(server.stop().success());
    assert!(!torn.exists());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let index = ward_index::SqliteIndex::open(&data.join("index.sqlite"), false)
            .await
            .unwrap();
        let row = index
            .instance(&obj.sop_instance.parse().unwrap())
            .await
            .unwrap();
        assert!(row.is_some(), "the blob's row is back");
        index.close().await;
    });
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
