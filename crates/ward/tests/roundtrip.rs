//! Round trips through query/retrieve with pynetdicom peers: every storage file of pydicom's
//! corpus that Ward stores comes back through C-GET and through C-MOVE in the transfer syntax
//! it was sent in, with the data set that was sent; compressed objects retrieved by peers that
//! accept only explicit VR little endian arrive decoded, with the pixels DCMTK decodes.

#![allow(clippy::unwrap_used)]

mod pydicom_corpus;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use pydicom_corpus::CorpusFile;
use ward_test_support::{WardServer, data_dir_with_peers, python_script};

const WARD: &str = env!("CARGO_BIN_EXE_ward");
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

fn bin() -> &'static Path {
    Path::new(WARD)
}

fn output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An archive of corpus files, and what it stored and refused of them.
struct Archive<'a> {
    _dir: tempfile::TempDir,
    server: WardServer,
    stored: Vec<&'a CorpusFile>,
    refused: BTreeMap<String, String>,
}

/// Stores `files` into a fresh archive that lets RETRIEVER get and move.
fn archive<'a>(files: &[&'a CorpusFile]) -> Archive<'a> {
    let dir = data_dir_with_peers(
        bin(),
        &[
            ("CORPUS", "127.0.0.1", "store"),
            ("RETRIEVER", "127.0.0.1", "get,move"),
        ],
    );
    let server = WardServer::start(bin(), &dir.path().join("data"));
    let (stored, refused) = pydicom_corpus::store_each(bin(), &server, "CORPUS", files);
    Archive {
        _dir: dir,
        server,
        stored,
        refused,
    }
}

impl Archive<'_> {
    /// Registers one C-MOVE destination per transfer syntax, each on a port free now, and
    /// returns the `--dest` arguments for `retrieve.py`.
    fn destinations<'s>(&self, syntaxes: impl IntoIterator<Item = &'s str>) -> Vec<String> {
        let mut args = Vec::new();
        for (n, ts) in syntaxes.into_iter().enumerate() {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
                .to_string();
            let aet = format!("DEST{n}");
            self.server.cli(&[
                "ae",
                "add",
                &aet,
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--allow",
                "store",
            ]);
            args.push(format!("--dest={ts}={aet}:{port}"));
        }
        args
    }

    /// Runs `retrieve.py MODE` for the stored files into a new directory; returns the directory
    /// and the completed, failed and warning counts the archive reported.
    fn retrieve(&self, mode: &str, extra: &[String]) -> (tempfile::TempDir, [u32; 3]) {
        let out_dir = tempfile::tempdir().unwrap();
        let port = self.server.port.to_string();
        let out = python_script("retrieve.py")
            .args([mode, "127.0.0.1", &port, "RETRIEVER", "WARD"])
            .arg(out_dir.path())
            .args(extra)
            .args(self.stored.iter().map(|(path, _)| path))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let counts: Vec<u32> = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{} ", mode.to_uppercase())))
            .unwrap_or_else(|| panic!("no counts: {}", output(&out)))
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        (out_dir, counts.try_into().unwrap())
    }
}

/// The file `retrieve.py` wrote for an instance.
fn received(dir: &Path, info: &ward_dicom::Part10Info) -> PathBuf {
    dir.join(format!("{}.dcm", info.sop_instance_uid.as_str()))
}

#[test]
fn corpus_comes_back_unchanged_through_get_and_move() {
    let (files, _) = pydicom_corpus::storage_files();
    let mut refused = BTreeMap::new();
    let mut returned = 0;
    for pass in pydicom_corpus::passes(&files) {
        let a = archive(&pass);
        refused.extend(a.refused.clone());
        if a.stored.is_empty() {
            continue;
        }
        let n = u32::try_from(a.stored.len()).unwrap();
        let syntaxes: BTreeSet<&str> = a
            .stored
            .iter()
            .map(|(_, info)| info.transfer_syntax.as_str())
            .collect();
        let dests = a.destinations(syntaxes);
        for (mode, extra) in [("get", vec![]), ("move", dests)] {
            let (dir, counts) = a.retrieve(mode, &extra);
            assert_eq!(counts, [n, 0, 0], "{mode}");
            let mut pairs = Vec::new();
            for (path, info) in &a.stored {
                let got = received(dir.path(), info);
                let got_info = ward_dicom::read_part10_info(&got)
                    .unwrap_or_else(|e| panic!("{mode} {}: {e}", path.display()));
                assert_eq!(
                    got_info.transfer_syntax,
                    info.transfer_syntax,
                    "{mode} {}",
                    path.display()
                );
                pairs.push(path.clone());
                pairs.push(got);
            }
            let cmp = python_script("compare.py").args(&pairs).output().unwrap();
            assert!(
                cmp.status.success(),
                "{mode}: retrieved data sets differ from what was sent:\n{}",
                output(&cmp)
            );
        }
        returned += a.stored.len();
    }
    println!("{returned} objects came back unchanged through C-GET and C-MOVE");
    pydicom_corpus::assert_expected_refusals(&refused);
}

/// Compressed objects Ward decodes: RLE (8, 16 and 32 bits, multi-frame), JPEG lossless and
/// JPEG baseline (YBR_FULL, YBR_FULL_422 and RGB without colour transform, odd sizes, 30
/// frames).
const DECODED: &[&str] = &[
    "MR_small_RLE.dcm",
    "SC_rgb_rle_16bit_2frame.dcm",
    "SC_rgb_rle_2frame.dcm",
    "rtdose_rle.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "SC_rgb_dcmtk_+eb+cy+np.dcm",
    "SC_rgb_dcmtk_+eb+cr.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_jpeg_lossy_gdcm.dcm",
    "SC_jpeg_no_color_transform.dcm",
    "SC_jpeg_no_color_transform_2.dcm",
    "SC_rgb_small_odd_jpeg.dcm",
    "examples_ybr_color.dcm",
];

/// Compressed objects Ward cannot decode: 12-bit JPEG extended, JPEG 2000.
const NOT_DECODED: &[&str] = &["JPGExtended.dcm", "JPEG2000.dcm"];

/// Largest difference allowed between Ward's and DCMTK's decoding of a lossy JPEG sample:
/// decoders round the inverse DCT, chroma upsampling and colour conversion differently (the
/// corpus shows up to 3 levels, on 4:2:2 data).
const LOSSY_TOLERANCE: &str = "3";

#[test]
fn compressed_objects_arrive_decoded_for_peers_without_compression() {
    let (files, _) = pydicom_corpus::storage_files();
    let chosen: Vec<CorpusFile> = files
        .into_iter()
        .filter(|(path, _)| {
            let name = path.file_name().unwrap().to_str().unwrap();
            DECODED.contains(&name) || NOT_DECODED.contains(&name)
        })
        .collect();
    assert_eq!(chosen.len(), DECODED.len() + NOT_DECODED.len());
    let mut checked = 0;
    for pass in pydicom_corpus::passes(&chosen) {
        let a = archive(&pass);
        assert!(a.refused.is_empty(), "{:?}", a.refused);
        let failing = a
            .stored
            .iter()
            .filter(|(path, _)| NOT_DECODED.contains(&path.file_name().unwrap().to_str().unwrap()))
            .count();
        let decoded = a.stored.len() - failing;
        let expected = [decoded, failing, 0].map(|n| u32::try_from(n).unwrap());
        let only_explicit = format!("--as={EXPLICIT_VR_LE}");
        let dests = a.destinations([EXPLICIT_VR_LE]);
        for (mode, extra) in [
            ("get", vec![only_explicit.clone()]),
            ("move", [vec![only_explicit.clone()], dests].concat()),
        ] {
            let (dir, counts) = a.retrieve(mode, &extra);
            assert_eq!(counts, expected, "{mode}");
            let mut pairs = Vec::new();
            for (path, info) in &a.stored {
                let got = received(dir.path(), info);
                let name = path.file_name().unwrap().to_str().unwrap();
                if NOT_DECODED.contains(&name) {
                    assert!(!got.exists(), "{mode}: {name} was sent");
                    continue;
                }
                pairs.push(path.clone());
                pairs.push(got);
                checked += 1;
            }
            let cmp = python_script("pixels.py")
                .arg(LOSSY_TOLERANCE)
                .args(&pairs)
                .output()
                .unwrap();
            println!("{}", String::from_utf8_lossy(&cmp.stdout));
            assert!(
                cmp.status.success(),
                "{mode}: decoded pixels differ from DCMTK's:\n{}",
                output(&cmp)
            );
        }
    }
    assert_eq!(checked, 2 * DECODED.len());
}
