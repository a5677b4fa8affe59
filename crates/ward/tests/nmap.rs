//! nmap's DICOM scripts, the tools of the 2019 investigations, against a default Ward: nothing
//! accepted. The scripts only run on ports nmap associates with DICOM, so this test takes
//! 11112 on loopback.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use ward_test_support::{WardServer, data_dir_with_peers};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn nmap(script: &str) -> String {
    let nmap = Path::new("/usr/bin/nmap");
    assert!(
        nmap.exists(),
        "nmap is missing: the test command installs it (Debian package nmap)"
    );
    let out = Command::new(nmap)
        .args(["-Pn", "-n", "-p", "11112", "--script", script, "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nmap_dicom_scripts_find_nothing_accepted() {
    let bin = Path::new(WARD);
    let dir = data_dir_with_peers(bin, &[("CT1", "127.0.0.1", "echo,store")]);
    let server = WardServer::start_with(
        bin,
        &dir.path().join("data"),
        &["--dicom-listen", "127.0.0.1:11112"],
    );
    let ping = nmap("dicom-ping");
    assert!(ping.contains("dicom-ping"), "{ping}");
    assert!(!ping.contains("Any AET is accepted"), "{ping}");
    assert!(ping.contains("Called AET check enabled"), "{ping}");
    let brute = nmap("dicom-brute");
    assert!(brute.contains("No valid accounts found"), "{brute}");
    // The guessing tripped the back-off and was recorded.
    assert!(
        server
            .log()
            .contains("blocked after repeated failed associations"),
        "{}",
        server.log()
    );
}
