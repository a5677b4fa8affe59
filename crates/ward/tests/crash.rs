//! `kill -9` in the middle of concurrent transfers: after a restart every object a real client
//! saw acknowledged is in the archive, byte for byte, and nothing unacknowledged lingers.

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
use ward_test_support::{WardServer, data_dir_with_peers, python_script};

const WARD: &str = env!("CARGO_BIN_EXE_ward");
const ROUNDS: usize = 5;
const CLIENTS: usize = 2;
const FILES_PER_CLIENT: usize = 40;

struct Client {
    child: Child,
    acked: Arc<Mutex<Vec<String>>>,
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
    Client { child, acked }
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

    for round in 0..ROUNDS {
        let server = WardServer::start(bin, &data);
        if round > 0 {
            assert!(
                server.log().contains("recovered after an unclean stop"),
                "restart after kill -9 must run recovery:\n{}",
                server.log()
            );
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
            let _ = c.child.wait();
            all_acked.extend(c.acked.lock().unwrap().iter().cloned());
        }
    }

    // Restart once more, let recovery run, stop cleanly, then inspect the archive.
    let server = WardServer::start(bin, &data);
    assert!(server.stop().success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let index = ward_index::SqliteIndex::open(&data.join("index.sqlite"), false)
            .await
            .unwrap();
        for uid in &all_acked {
            let row = index
                .instance(&uid.parse().unwrap())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged {uid} is missing"));
            let key = &row.blob_key;
            let blob = data
                .join("blobs")
                .join(&key[0..2])
                .join(&key[2..4])
                .join(key);
            let stored = std::fs::read(&blob).unwrap();
            let original = std::fs::read(&sent[uid]).unwrap();
            assert!(
                stored == original,
                "{uid}: stored bytes differ from the file sent"
            );
        }
        // No orphans: every blob file is indexed, every row has its blob.
        let counts = index.counts().await.unwrap();
        let blobs = count_files(&data.join("blobs"));
        assert_eq!(
            counts.instances as usize, blobs,
            "blobs and index rows disagree"
        );
        assert!(counts.instances as usize >= all_acked.len());
        index.close().await;
    });
    assert_eq!(count_files(&data.join("spool")), 0, "spool left behind");
    println!(
        "{ROUNDS} rounds: {} acknowledged objects verified after kill -9",
        all_acked.len()
    );
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
