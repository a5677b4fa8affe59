//! WADO-RS below the instance, against a running `ward serve`: frames, bulk data, rendered
//! images and thumbnails of pydicom's test files stored over DIMSE, read back with
//! dicomweb-client (through `tests/py/dicomweb.py`) and with a raw HTTPS client, and compared
//! with what pydicom reads from the originals; and the refusals.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ward_test_support::http::{Response, multipart_parts};
use ward_test_support::{WardServer, data_dir_with_peers, pydicom_test_files, python_script, ward};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

/// Native, implicit VR little endian, 15 frames of 10×10 32-bit samples: pydicom's
/// `rtdose.dcm` with its meta group's SOP Instance UID made to agree with the data set's, which
/// Ward requires (see the corpus tests).
const NATIVE_MULTIFRAME: &str = "rtdose_fixed.dcm";
/// JPEG baseline, YBR_FULL_422, 30 frames of 240×320.
const JPEG_MULTIFRAME: &str = "examples_ybr_color.dcm";
/// RLE, RGB, 2 frames.
const RLE_MULTIFRAME: &str = "SC_rgb_rle_2frame.dcm";
/// Native CT: MONOCHROME2, 16-bit signed, 128×128, Rescale Intercept -1024.
const CT: &str = "CT_small.dcm";
/// Native RGB, 240×320.
const RGB: &str = "examples_rgb_color.dcm";
/// Native, with 18 KB of Overlay Data before the pixel data.
const OVERLAY: &str = "examples_overlay.dcm";

const FILES: &[&str] = &[
    NATIVE_MULTIFRAME,
    JPEG_MULTIFRAME,
    RLE_MULTIFRAME,
    CT,
    RGB,
    OVERLAY,
];

/// An archive holding [`FILES`], and a clinician's API token.
struct Archive {
    _dir: tempfile::TempDir,
    files: PathBuf,
    server: WardServer,
    token: String,
}

fn archive() -> Archive {
    let bin = Path::new(WARD);
    let dir = data_dir_with_peers(bin, &[("MODALITY", "127.0.0.1", "store")]);
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    for name in FILES.iter().filter(|&&n| n != NATIVE_MULTIFRAME) {
        std::fs::copy(pydicom_test_files().join(name), files.join(name)).unwrap();
    }
    let fixed = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, pydicom; d = pydicom.dcmread(sys.argv[1]); \
             d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID; d.save_as(sys.argv[2])",
        ])
        .arg(pydicom_test_files().join("rtdose.dcm"))
        .arg(files.join(NATIVE_MULTIFRAME))
        .status()
        .unwrap();
    assert!(fixed.success());
    let server = WardServer::start(bin, &dir.path().join("data"));
    for name in FILES {
        let path = files.join(name);
        let out = ward(
            bin,
            &[
                "store",
                &server.addr(),
                path.to_str().unwrap(),
                "--aet",
                "MODALITY",
            ],
        );
        assert!(out.status.success(), "{name} not stored: {out:?}");
    }
    let token = server.token("viewer", "clinician");
    Archive {
        _dir: dir,
        files,
        server,
        token,
    }
}

impl Archive {
    /// Runs a `dicomweb.py` command with the clinician's token and returns its JSON output.
    fn client(&self, args: &[&str]) -> serde_json::Value {
        let url = format!("https://localhost:{}/dicom-web", self.server.https_port);
        let ca = self.server.data.join("keys").join("ca.pem");
        let out = python_script("dicomweb.py")
            .args([url.as_str(), ca.to_str().unwrap(), &self.token])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dicomweb.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn get(&self, path: &str, token: &str, accept: &str) -> Response {
        self.server.web().get(path, token, accept)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.files.join(name)
    }

    /// `/dicom-web/studies/../series/../instances/..` of a stored file.
    fn instance_path(&self, name: &str) -> String {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, pydicom; d = pydicom.dcmread(sys.argv[1], stop_before_pixels=True); \
             print(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID)",
            ])
            .arg(self.file(name))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let uids: Vec<&str> = text.split_whitespace().collect();
        format!(
            "/dicom-web/studies/{}/series/{}/instances/{}",
            uids[0], uids[1], uids[2]
        )
    }
}

/// Width and height of a PNG (from IHDR) or a JPEG (from its SOF segment).
fn image_size(bytes: &[u8]) -> (u32, u32) {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        return (be(16), be(20));
    }
    assert!(bytes.starts_with(&[0xFF, 0xD8]), "neither PNG nor JPEG");
    let mut at = 2;
    loop {
        let marker = bytes[at + 1];
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        if (0xC0..=0xC3).contains(&marker) {
            let be16 = |i: usize| u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
            return (be16(at + 7), be16(at + 5));
        }
        at += 2 + len;
    }
}

#[test]
fn frames_match_pydicom() {
    let archive = archive();
    for (name, tolerance, frames) in [
        (NATIVE_MULTIFRAME, "0", 15),
        (RLE_MULTIFRAME, "0", 2),
        // Lossy: decoders may round the inverse DCT and the colour conversion differently.
        (JPEG_MULTIFRAME, "8", 30),
    ] {
        let path = archive.file(name);
        let out = archive.client(&["frames_match", path.to_str().unwrap(), tolerance]);
        assert_eq!(out["frames"], out["expected"], "{name}: {out}");
        assert_eq!(out["frames"].as_array().unwrap().len(), frames, "{name}");
        assert_eq!(out["within"], true, "{name}: {out}");
    }
    // The JPEG frames as stored, when the client asks for image/jpeg in their syntax.
    let path = archive.file(JPEG_MULTIFRAME);
    let out = archive.client(&[
        "frames_match",
        path.to_str().unwrap(),
        "0",
        "image/jpeg",
        "1.2.840.10008.1.2.4.50",
    ]);
    assert_eq!(out["frames"], out["expected"], "{out}");
    assert_eq!(out["max_diff"], 0, "{out}");

    // A selection, in the order asked, with the parts' media type.
    let response = archive.get(
        &format!("{}/frames/3,1", archive.instance_path(NATIVE_MULTIFRAME)),
        &archive.token,
        "multipart/related; type=\"application/octet-stream\"",
    );
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap();
    assert!(content_type.starts_with("multipart/related; type=\"application/octet-stream\""));
    let parts = multipart_parts(content_type, &response.body);
    assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [400, 400]);
    assert_ne!(parts[0], parts[1]);
    // A single frame bare, when the client asks for exactly that.
    let single = archive.get(
        &format!("{}/frames/3", archive.instance_path(NATIVE_MULTIFRAME)),
        &archive.token,
        "application/octet-stream",
    );
    assert_eq!(single.status, 200);
    assert_eq!(single.body, parts[0]);
}

#[test]
fn bulk_data_matches_pydicom() {
    let archive = archive();
    let overlay = archive.file(OVERLAY);
    let out = archive.client(&["bulkdata", overlay.to_str().unwrap(), "60003000"]);
    assert_eq!(out["path"], "60003000", "{out}");
    assert_eq!(out["equal"], true, "{out}");
    let ct = archive.file(CT);
    let out = archive.client(&["bulkdata", ct.to_str().unwrap(), "7FE00010"]);
    assert_eq!(out["path"], "7FE00010", "{out}");
    assert_eq!(out["equal"], true, "{out}");
    // Compressed pixel data by URI: one part per stored frame.
    let response = archive.get(
        &format!(
            "{}/bulkdata/7FE00010",
            archive.instance_path(JPEG_MULTIFRAME)
        ),
        &archive.token,
        "multipart/related; type=\"image/jpeg\"",
    );
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap();
    let parts = multipart_parts(content_type, &response.body);
    assert_eq!(parts.len(), 30);
    assert!(parts.iter().all(|p| p.starts_with(&[0xFF, 0xD8])));
}

#[test]
fn renderings_and_thumbnails() {
    let archive = archive();
    let ct = archive.file(CT);
    let out = archive.client(&["rendered_match", ct.to_str().unwrap()]);
    assert_eq!(out["size"], serde_json::json!([128, 128]), "{out}");
    assert_eq!(out["mode"], "L", "{out}");
    let rgb = archive.file(RGB);
    let out = archive.client(&["rendered_match", rgb.to_str().unwrap()]);
    assert_eq!(out["size"], serde_json::json!([320, 240]), "{out}");
    assert_eq!(out["mode"], "RGB", "{out}");
    assert_eq!(out["equal"], true, "RGB passes through: {out}");
    // The existing client command, too.
    let instance = archive.instance_path(CT);
    let uids: Vec<&str> = instance.split('/').skip(3).step_by(2).collect();
    let out = archive.client(&["rendered", uids[0], uids[1], uids[2]]);
    assert_eq!(out["png"], true, "{out}");

    // JPEG by default; a window from the query changes the image.
    let default = archive.get(&format!("{instance}/rendered"), &archive.token, "*/*");
    assert_eq!(default.status, 200);
    assert_eq!(default.header("content-type"), Some("image/jpeg"));
    assert_eq!(image_size(&default.body), (128, 128));
    let windowed = archive.get(
        &format!("{instance}/rendered?window=40,80,linear"),
        &archive.token,
        "image/jpeg",
    );
    assert_eq!(windowed.status, 200);
    assert_ne!(windowed.body, default.body);

    // Thumbnails fit 128×128 unless a viewport says otherwise, keeping the aspect ratio.
    let rgb_instance = archive.instance_path(RGB);
    for (query, accept, size) in [
        ("", "image/png", (128, 96)),
        ("?viewport=64,64", "image/jpeg", (64, 48)),
    ] {
        let thumb = archive.get(
            &format!("{rgb_instance}/thumbnail{query}"),
            &archive.token,
            accept,
        );
        assert_eq!(thumb.status, 200, "{query}");
        assert_eq!(thumb.header("content-type"), Some(accept));
        assert_eq!(image_size(&thumb.body), size, "{query}");
    }
    // One frame of a multi-frame object.
    let frame = archive.get(
        &format!(
            "{}/frames/30/rendered",
            archive.instance_path(JPEG_MULTIFRAME)
        ),
        &archive.token,
        "image/png",
    );
    assert_eq!(frame.status, 200);
    assert_eq!(image_size(&frame.body), (320, 240));
}

#[test]
fn refusals() {
    let archive = archive();
    let native = archive.instance_path(NATIVE_MULTIFRAME);
    let octets = "multipart/related; type=\"application/octet-stream\"";
    let modality = archive.server.token("scanner", "modality");
    let unknown = "/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5";
    let cases: Vec<(String, &str, &str, u16)> = vec![
        (format!("{native}/frames/1"), "", octets, 401),
        (format!("{native}/rendered"), "", "image/png", 401),
        (format!("{native}/bulkdata/7FE00010"), "", octets, 401),
        (format!("{native}/frames/1"), &modality, octets, 403),
        (format!("{native}/thumbnail"), &modality, "image/jpeg", 403),
        (format!("{native}/frames/0"), &archive.token, octets, 400),
        (format!("{native}/frames/1,x"), &archive.token, octets, 400),
        (format!("{native}/frames/16"), &archive.token, octets, 404),
        (format!("{native}/frames/2,99"), &archive.token, octets, 404),
        (
            format!("{native}/rendered?window=1,0,linear"),
            &archive.token,
            "image/png",
            400,
        ),
        (
            format!("{native}/rendered?viewport=0,10"),
            &archive.token,
            "image/png",
            400,
        ),
        (
            format!("{native}/bulkdata/7FE00010/0"),
            &archive.token,
            octets,
            404,
        ),
        (
            format!("{native}/bulkdata/..%2F..%2Fkeys"),
            &archive.token,
            octets,
            404,
        ),
        (format!("{unknown}/frames/1"), &archive.token, octets, 404),
        (
            format!("{unknown}/rendered"),
            &archive.token,
            "image/png",
            404,
        ),
        // Native pixel data is not stored as JPEG; nor is anything rendered as GIF.
        (
            format!("{native}/frames/1"),
            &archive.token,
            "multipart/related; type=\"image/jpeg\"",
            406,
        ),
        (
            format!("{native}/rendered"),
            &archive.token,
            "image/gif",
            406,
        ),
        // 32-bit dose grids are cut into frames but not rendered.
        (
            format!("{native}/rendered"),
            &archive.token,
            "image/png",
            406,
        ),
    ];
    for (path, token, accept, status) in cases {
        let response = archive.get(&path, token, accept);
        assert_eq!(response.status, status, "{path} ({accept})");
        if status != 200 {
            assert!(
                !response.body.windows(4).any(|w| w == b"\xFF\xD8\xFF\xE0"),
                "a refusal carries no image"
            );
        }
    }
    let thousand_and_one = vec!["1"; 1001].join(",");
    let response = archive.get(
        &format!("{native}/frames/{thousand_and_one}"),
        &archive.token,
        octets,
    );
    assert_eq!(response.status, 400);
}
