//! Decoding of compressed pixel data for peers that accept only native syntaxes: the pre-scan,
//! then `decode_to_native`, as the retrieve SCPs call them.
//!
//! Input: one configuration byte (bits 0–2: the compressed syntax, see `ts::PIXELS`; bit 3:
//! implicit rather than explicit VR little endian output), then the stored data set.
//!
//! Properties:
//! - nothing panics;
//! - memory stays within a constant factor of the input plus what the image legitimately
//!   needs: decoded pixels are capped at `MAX_IN_MEMORY_LEN`, held at most three times (the
//!   pixel buffer, the data set holding it, the output);
//! - what `decode_to_native` writes passes the pre-scan in its target syntax: Ward sends it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_dicom::{MAX_IN_MEMORY_LEN, PrescanLimits, decode_to_native, prescan_dataset};
use ward_fuzz::ts;

fn warm_up() {
    let _ = decode_to_native(&[], ts::RLE, ts::EXPLICIT_LE);
}

fuzz_target!(
    init: ward_fuzz::init("pixels", ward_fuzz::seeds::pixels, warm_up),
    |data: &[u8]| {
        let Some((&config, bytes)) = data.split_first() else {
            return;
        };
        let from = ts::pick(ts::PIXELS, config & 0x07);
        let to = ts::pick(ts::NATIVE_TARGETS, (config >> 3) & 0x01);
        let limits = PrescanLimits::default();
        if prescan_dataset(bytes, bytes.len() as u64, from, &limits).is_err() {
            return;
        }
        let budget = ward_fuzz::parse_budget(bytes.len()) + 3 * MAX_IN_MEMORY_LEN as usize;
        let decoded = ward_fuzz::with_budget(budget, || decode_to_native(bytes, from, to));
        if let Ok(out) = decoded {
            let rescan = prescan_dataset(&out[..], out.len() as u64, to, &limits);
            assert!(rescan.is_ok(), "decode_to_native wrote what the pre-scan refuses: {rescan:?}");
        }
    }
);
