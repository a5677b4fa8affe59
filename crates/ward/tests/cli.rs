//! The command line as an administrator meets it: init, strict configuration, registry
//! commands, graceful stop.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ward_test_support::{WardServer, ward, ward_ok};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn bin() -> &'static Path {
    Path::new(WARD)
}

#[test]
fn init_creates_an_owner_only_directory_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ward-data");
    let d = data.to_str().unwrap();
    ward_ok(bin(), &["init", "--data", d]);
    for (path, mode) in [
        (data.clone(), 0o700),
        (data.join("ward.toml"), 0o600),
        (data.join("index.sqlite"), 0o600),
        (data.join("blobs"), 0o700),
        (data.join("spool"), 0o700),
    ] {
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "{}",
            path.display()
        );
    }
    let toml = std::fs::read_to_string(data.join("ward.toml")).unwrap();
    assert!(
        toml.contains("version = 1") && toml.contains("127.0.0.1:11112"),
        "{toml}"
    );

    let again = ward(bin(), &["init", "--data", d]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("will not overwrite"));
}

#[test]
fn unknown_configuration_keys_stop_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    ward_ok(bin(), &["init", "--data", d]);
    let path = data.join("ward.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("[dicom]", "[dicom]\nallow_any_ae = true"),
    )
    .unwrap();
    let out = ward(
        bin(),
        &["serve", "--data", d, "--dicom-listen", "127.0.0.1:0"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("allow_any_ae"), "{stderr}");
}

#[test]
fn serve_initialises_on_first_run_and_stops_gracefully() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("fresh");
    let server = WardServer::start(bin(), &data);
    assert!(data.join("ward.toml").is_file());
    assert!(data.join("ward.pid").is_file(), "running marker");
    let log_has_listening = server.log().contains("listening on 127.0.0.1:");
    assert!(log_has_listening);
    let status = server.stop();
    assert!(status.success());
    assert!(
        !data.join("ward.pid").exists(),
        "a graceful stop clears the running marker"
    );
}

#[test]
fn registry_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    let d = d.to_str().unwrap();
    ward_ok(bin(), &["init", "--data", d]);
    let out = ward_ok(
        bin(),
        &[
            "ae",
            "add",
            "CT_1",
            "--host",
            "10.1.2.0/24",
            "--port",
            "104",
            "--allow",
            "echo,store",
            "--data",
            d,
        ],
    );
    assert!(out.contains("registered CT_1"));
    let dup = ward(
        bin(),
        &[
            "ae", "add", "CT_1", "--host", "10.1.2.3", "--allow", "echo", "--data", d,
        ],
    );
    assert!(!dup.status.success());
    for bad in [
        vec![
            "ae",
            "add",
            "TOO_LONG_AE_TITLE_",
            "--host",
            "10.0.0.1",
            "--allow",
            "echo",
        ],
        vec!["ae", "add", "X", "--host", "ct.example", "--allow", "echo"],
        vec![
            "ae",
            "add",
            "X",
            "--host",
            "10.0.0.1",
            "--allow",
            "echo,delete",
        ],
        vec!["ae", "add", "X", "--host", "10.0.0.1", "--allow", ""],
    ] {
        let mut args = bad.clone();
        args.extend(["--data", d]);
        assert!(!ward(bin(), &args).status.success(), "{bad:?}");
    }
    let list = ward_ok(bin(), &["ae", "list", "--data", d]);
    assert!(
        list.contains("CT_1") && list.contains("10.1.2.0/24") && list.contains("104"),
        "{list}"
    );
    assert!(list.contains("echo,store"));
    ward_ok(bin(), &["ae", "remove", "CT_1", "--data", d]);
    assert!(
        !ward(bin(), &["ae", "remove", "CT_1", "--data", d])
            .status
            .success()
    );
    assert!(!ward_ok(bin(), &["ae", "list", "--data", d]).contains("CT_1"));
}
