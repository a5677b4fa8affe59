//! C-FIND/C-GET/C-MOVE identifiers: the pre-scan, then `ward_query::parse_identifier`, as the
//! query SCPs call them.
//!
//! Input: one configuration byte (bits 0–1: the transfer syntax, see `ts::IDENTIFIER`; bit 2:
//! patient root rather than study root), then the identifier as received.
//!
//! Properties: nothing panics, and parsing an identifier the pre-scan accepts allocates at most
//! a constant factor of its (inflated) size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_dicom::{PrescanLimits, prescan_dataset};
use ward_fuzz::ts;
use ward_query::{QueryModel, parse_identifier};

fn warm_up() {
    let _ = parse_identifier(&[], ts::IMPLICIT_LE, QueryModel::StudyRoot);
    let _ = prescan_dataset(
        &[0x08, 0, 0x52, 0][..],
        4,
        ts::IMPLICIT_LE,
        &PrescanLimits::default(),
    );
}

fuzz_target!(
    init: ward_fuzz::init("identifier", ward_fuzz::seeds::identifier, warm_up),
    |data: &[u8]| {
        let Some((&config, bytes)) = data.split_first() else {
            return;
        };
        let uid = ts::pick(ts::IDENTIFIER, config & 0x03);
        let model = if config & 0x04 != 0 {
            QueryModel::PatientRoot
        } else {
            QueryModel::StudyRoot
        };
        // The limits the C-FIND SCP uses.
        let limits = PrescanLimits::default();
        if prescan_dataset(bytes, bytes.len() as u64, uid, &limits).is_err() {
            return;
        }
        let decoded = ward_fuzz::decoded_len(bytes, uid, limits.max_inflated_bytes);
        ward_fuzz::with_budget(ward_fuzz::parse_budget(decoded.max(bytes.len())), || {
            let _ = parse_identifier(bytes, uid, model);
        });
    }
);
