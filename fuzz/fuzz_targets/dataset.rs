//! The ingest path's checks on a received data set: `prescan_dataset`, then (when it passes)
//! the Part 10 file Ward writes around it, the file checks, and the header reading that feeds
//! the index; plus the retrieve path's conversion between native syntaxes.
//!
//! Input: one configuration byte choosing the transfer syntax (see `ts::DATASET`), then the data
//! set as received (for the deflated syntax, the compressed bytes).
//!
//! Properties:
//! - nothing panics;
//! - a data set the pre-scan accepts is accepted again by `prescan_part10_file` once written
//!   behind `write_part10_header`, as ingest writes it;
//! - reading its header with dicom-object (`read_header_with_copy`, as ingest calls it) and
//!   converting it (`transcode_native`, as retrieve calls it) allocate at most a constant
//!   factor of its size (its inflated size, for the deflated syntax, which the pre-scan caps);
//! - what `transcode_native` writes passes the pre-scan in its target syntax: Ward sends it.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use ward_dicom::{PrescanLimits, prescan_dataset, prescan_part10_file, write_part10_header};
use ward_fuzz::ts;
use ward_types::Uid;

fn warm_up() {
    // The data dictionary and the transfer syntax registry are built on first use.
    let _ = ward_dicom::transcode_native(&[], ts::EXPLICIT_LE, ts::IMPLICIT_LE);
    let _ = prescan_dataset(
        &[0x08, 0, 0x16, 0][..],
        4,
        ts::IMPLICIT_LE,
        &PrescanLimits::default(),
    );
}

fuzz_target!(
    init: ward_fuzz::init("dataset", ward_fuzz::seeds::dataset, warm_up),
    |data: &[u8]| {
        let Some((&config, body)) = data.split_first() else {
            return;
        };
        let uid = ts::pick(ts::DATASET, config);
        let limits = PrescanLimits::default();
        let len = body.len() as u64;
        // The pre-scan streams through a fixed buffer whatever the input declares.
        let scanned = ward_fuzz::with_budget(ward_fuzz::parse_budget(0), || {
            prescan_dataset(body, len, uid, &limits)
        });
        if scanned.is_err() {
            return;
        }
        let decoded = ward_fuzz::decoded_len(body, uid, limits.max_inflated_bytes);
        let budget = ward_fuzz::parse_budget(decoded.max(body.len()));

        // The file as ingest writes it: Ward's own meta group, then the received bytes.
        let path = ward_fuzz::scratch_file("dataset");
        {
            let sop_class = Uid::parse("1.2.840.10008.5.1.4.1.1.7").expect("valid");
            let sop_instance = Uid::parse("1.2.826.0.1.3680043.2.1125.9").expect("valid");
            let syntax = Uid::parse(uid).expect("valid");
            let mut file = std::fs::File::create(&path).expect("create the scratch file");
            write_part10_header(&mut file, &sop_class, &sop_instance, &syntax)
                .expect("write the meta group");
            file.write_all(body).expect("write the data set");
        }
        let (info, _) = prescan_part10_file(&path, &limits)
            .expect("a data set the pre-scan accepts passes again behind Ward's meta group");
        assert_eq!(info.transfer_syntax.as_str(), uid);

        ward_fuzz::with_budget(budget, || {
            let _ = ward_dicom::read_header_with_copy(&path);
        });

        if ward_dicom::is_native_transfer_syntax(uid) {
            for to in [ts::IMPLICIT_LE, ts::EXPLICIT_LE, ts::EXPLICIT_BE] {
                let converted = ward_fuzz::with_budget(budget, || {
                    ward_dicom::transcode_native(body, uid, to)
                });
                if let Ok(out) = converted {
                    let rescan = prescan_dataset(&out[..], out.len() as u64, to, &limits);
                    assert!(rescan.is_ok(), "transcode_native wrote what the pre-scan refuses: {rescan:?}");
                }
            }
        }
    }
);
