//! Fixtures for Ward's integration tests: a real `ward serve` on a free loopback port, the
//! paths of the peer tools nobody here wrote (DCMTK, pynetdicom), synthetic DICOM objects, and a
//! raw DIMSE client for playing hostile input over a real socket. Never shipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod dicom;
pub mod http;
pub mod jwt;
pub mod raw;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs a `ward` subcommand to completion.
pub fn ward(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("ward runs")
}

/// Runs a `ward` subcommand that must succeed, returning its stdout.
pub fn ward_ok(bin: &Path, args: &[&str]) -> String {
    let out = ward(bin, args);
    assert!(
        out.status.success(),
        "ward {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A DCMTK tool by absolute path (pynetdicom installs scripts of the same names that may come
/// first on PATH), with Nagle's algorithm off as DCMTK needs for sane latency.
pub fn dcmtk(tool: &str) -> Command {
    let path = Path::new("/usr/bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: the test command installs DCMTK (Debian package dcmtk)",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.env("TCP_NODELAY", "1");
    cmd
}

/// `python3` running one of the scripts under the repository's `tests/py/`.
pub fn python_script(name: &str) -> Command {
    let script = repo_root().join("tests").join("py").join(name);
    assert!(script.exists(), "{} is missing", script.display());
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    cmd
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate lives two levels below the repository root")
        .to_owned()
}

/// The directory of pydicom's bundled test files.
pub fn pydicom_test_files() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, pydicom.data as d; print(os.path.dirname(d.get_testdata_file('CT_small.dcm')))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pydicom is missing: the test command installs it ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A running `ward serve` on 127.0.0.1 with a port chosen by the kernel.
pub struct WardServer {
    bin: PathBuf,
    pub data: PathBuf,
    child: Child,
    /// The plain DIMSE port.
    pub port: u16,
    /// The DIMSE over TLS port.
    pub tls_port: u16,
    /// The HTTPS port (DICOMweb and the admin API).
    pub https_port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl WardServer {
    /// Starts `ward serve` on an existing (or new) data directory and waits until it listens.
    pub fn start(bin: &Path, data: &Path) -> WardServer {
        Self::start_with(bin, data, &[])
    }

    /// Same, with extra arguments for `ward serve`.
    pub fn start_with(bin: &Path, data: &Path, extra: &[&str]) -> WardServer {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(default_listener(extra, "--dicom-listen"))
            .args(default_listener(extra, "--dicom-tls-listen"))
            .args(default_listener(extra, "--http-listen"))
            .args(extra)
            .env("WARD_LOG", "info,ward_dimse=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ward serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        let tls_port = Arc::new(Mutex::new(0u16));
        let tls_sink = Arc::clone(&tls_port);
        let https_port = Arc::new(Mutex::new(0u16));
        let https_sink = Arc::clone(&https_port);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let port_after = |marker: &str| {
                    line.split(marker)
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .and_then(|p| p.parse::<u16>().ok())
                };
                if let Some(port) = port_after("DIMSE-TLS listening on 127.0.0.1:") {
                    *tls_sink.lock().unwrap() = port;
                }
                if let Some(port) = port_after("HTTPS listening on 127.0.0.1:") {
                    *https_sink.lock().unwrap() = port;
                }
                let port = line
                    .split("DIMSE listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
                    .map(|addr| addr.port());
                // Logged before the port is announced, so a test that saw the port also sees
                // every line up to it.
                sink.lock().unwrap().push(line);
                if let Some(port) = port {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "ward serve did not start listening:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let tls_port = *tls_port.lock().unwrap();
        let https_port = *https_port.lock().unwrap();
        WardServer {
            bin: bin.to_owned(),
            data: data.to_owned(),
            child,
            port,
            tls_port,
            https_port,
            log,
        }
    }

    /// The plain DIMSE address (always reached over loopback, whatever the listener's
    /// address).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.proc_status("VmRSS:")
    }

    /// Peak resident set size so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status("VmHWM:")
    }

    fn proc_status(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("server is alive");
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("status line present")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Stops the server gracefully (SIGTERM) and waits for it.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.child.wait().expect("wait for ward")
    }

    /// SIGKILL: no chance to clean up, as in a crash or power cut of the process.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs `ward` with `args` followed by `--data DIR`.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        let data = self.data.to_str().expect("utf-8 path");
        all.extend(["--data", data]);
        ward_ok(&self.bin, &all)
    }

    /// A new API token (`ward token create NAME --role ROLE`).
    pub fn token(&self, name: &str, role: &str) -> String {
        self.cli(&["token", "create", name, "--role", role])
            .trim()
            .to_owned()
    }

    /// A client of the HTTPS port that trusts Ward's own CA.
    pub fn web(&self) -> http::Client {
        http::Client::new(self.https_port, &self.data.join("keys").join("ca.pem"))
    }
}

impl Drop for WardServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `FLAG 127.0.0.1:0` unless the caller chose the listener itself.
fn default_listener(extra: &[&str], flag: &'static str) -> Vec<&'static str> {
    if extra.contains(&flag) {
        Vec::new()
    } else {
        vec![flag, "127.0.0.1:0"]
    }
}

/// The keyring file of a data directory: the master keys that wrap every blob's data key.
pub fn master_keys(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("master-keys")
}

/// The plaintext of a stored blob, read as Ward reads it: through the blob store, with the data
/// directory's master keys. Blob files on disk are sealed, so tests that compare what was
/// stored with what was sent read it through here. Panics if the blob does not authenticate.
pub fn stored_plaintext(data_dir: &Path, blob_key: &str) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    use ward_store::BlobStore;

    let keyring = ward_store::Keyring::load(&master_keys(data_dir)).expect("keyring loads");
    let store = ward_store::LocalBlobStore::open(data_dir, Arc::new(keyring)).expect("store opens");
    let key = ward_store::BlobKey::parse(blob_key).expect("a blob key");
    // A runtime of its own, on a thread of its own, so that tests may call this from inside
    // theirs.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let mut out = Vec::new();
                    store
                        .open(&key)
                        .await
                        .expect("blob opens")
                        .read_to_end(&mut out)
                        .await
                        .expect("blob reads");
                    out
                })
            })
            .join()
            .expect("reader thread")
    })
}

/// A fresh data directory with the given peers registered: `(aet, host, allow)`.
pub fn data_dir_with_peers(bin: &Path, peers: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_s = data.to_str().expect("utf-8 path");
    ward_ok(bin, &["init", "--data", data_s]);
    for (aet, host, allow) in peers {
        ward_ok(
            bin,
            &[
                "ae", "add", aet, "--host", host, "--allow", allow, "--data", data_s,
            ],
        );
    }
    dir
}
