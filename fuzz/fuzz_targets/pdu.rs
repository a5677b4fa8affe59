//! PDU framing: `read_pdu` and the cancel-safe `PduBuffer::read` over the same bytes.
//!
//! Input: one configuration byte (bits 0–3 choose the chunk size of the slow reader, bits 4–5
//! the P-DATA limit), then the byte stream a peer sends.
//!
//! Properties:
//! - neither reader panics, and neither allocates more than the limits allow;
//! - `PduBuffer::read`, fed a few bytes at a time and dropped at every point where it waits
//!   (as a timeout drops it in the association loop), yields exactly the PDUs and the error
//!   `read_pdu` yields from the whole stream;
//! - a control PDU that was read, written again by `write_pdu`, reads back equal; a PDV, written
//!   again by `write_pdv`, reads back equal; a PDV's data written by `write_fragments` reads
//!   back as fragments that join to the same data, the last one alone marked last.
#![no_main]

use dicom_ul::pdu::PDataValueType;
use libfuzzer_sys::fuzz_target;
use ward_dimse::pdu::{self, Incoming, PDU_HEADER, PduBuffer, PduError, Pdv};
use ward_fuzz::{Stutter, block_on, poll_once};

const CHUNKS: [usize; 16] = [
    1,
    2,
    3,
    5,
    6,
    7,
    8,
    13,
    64,
    100,
    255,
    1024,
    4096,
    16384,
    65536,
    1 << 20,
];
const LIMITS: [u32; 4] = [16, 4096, 16384, 65536];

/// A reading's outcome, comparable across the two readers.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Pdu(String),
    Closed,
    TooLarge { length: u32, limit: u32 },
    UnknownType(u8),
    Malformed,
}

fn outcome(read: &Result<Incoming, PduError>) -> Outcome {
    match read {
        Ok(incoming) => Outcome::Pdu(format!("{incoming:?}")),
        Err(PduError::Closed) => Outcome::Closed,
        Err(PduError::TooLarge { length, limit }) => Outcome::TooLarge {
            length: *length,
            limit: *limit,
        },
        Err(PduError::UnknownType(t)) => Outcome::UnknownType(*t),
        Err(PduError::Malformed(_)) => Outcome::Malformed,
        Err(PduError::Io(e)) => panic!("in-memory reads cannot fail: {e}"),
    }
}

fn check_round_trip(incoming: &Incoming, limit: u32) {
    match incoming {
        Incoming::Other(pdu) => {
            let mut out = Vec::new();
            // dicom-ul refuses to write some values it accepted (over-long AE titles): only
            // what it writes must read back.
            if block_on(pdu::write_pdu(&mut out, pdu)).is_err() {
                return;
            }
            if out.len() - PDU_HEADER > pdu::MAX_CONTROL_PDU as usize {
                return;
            }
            match block_on(pdu::read_pdu(&mut &out[..], limit)) {
                Ok(Incoming::Other(back)) => assert_eq!(&back, pdu, "control PDU round trip"),
                other => panic!("control PDU {pdu:?} re-read as {other:?}"),
            }
        }
        Incoming::PData(pdvs) => {
            for pdv in pdvs {
                check_pdv(pdv, limit);
            }
        }
    }
}

fn kind(pdv: &Pdv) -> PDataValueType {
    if pdv.is_command {
        PDataValueType::Command
    } else {
        PDataValueType::Data
    }
}

fn check_pdv(pdv: &Pdv, limit: u32) {
    let mut out = Vec::new();
    block_on(pdu::write_pdv(
        &mut out,
        pdv.context_id,
        kind(pdv),
        pdv.is_last,
        &pdv.data,
    ))
    .expect("writes to a Vec succeed");
    match block_on(pdu::read_pdu(&mut &out[..], limit)) {
        Ok(Incoming::PData(back)) => {
            assert_eq!(back.len(), 1);
            let b = &back[0];
            assert_eq!(
                (b.context_id, b.is_command, b.is_last, &b.data),
                (pdv.context_id, pdv.is_command, pdv.is_last, &pdv.data),
                "PDV round trip"
            );
        }
        other => panic!("PDV re-read as {other:?}"),
    }

    // Ward's sender splits a message into PDVs of at most `max_payload` bytes. At most 64 of
    // them here, so one input stays fast.
    let max_payload = pdv
        .data
        .len()
        .div_ceil(64)
        .max(1 + usize::from(pdv.context_id) % 97);
    let mut out = Vec::new();
    block_on(pdu::write_fragments(
        &mut out,
        pdv.context_id,
        kind(pdv),
        &pdv.data,
        max_payload,
    ))
    .expect("writes to a Vec succeed");
    let mut rest = &out[..];
    let mut joined = Vec::new();
    loop {
        let Ok(Incoming::PData(back)) = block_on(pdu::read_pdu(&mut rest, limit)) else {
            panic!("write_fragments wrote something read_pdu refuses");
        };
        assert_eq!(back.len(), 1);
        let b = &back[0];
        assert_eq!(
            (b.context_id, b.is_command),
            (pdv.context_id, pdv.is_command)
        );
        assert!(b.data.len() <= max_payload);
        joined.extend_from_slice(&b.data);
        if b.is_last {
            break;
        }
    }
    assert!(rest.is_empty(), "nothing after the fragment marked last");
    assert_eq!(joined, pdv.data, "fragments join to the data");
}

fuzz_target!(
    init: ward_fuzz::init("pdu", ward_fuzz::seeds::pdu, || {}),
    |data: &[u8]| {
        let Some((&config, stream)) = data.split_first() else {
            return;
        };
        let chunk = CHUNKS[usize::from(config & 0x0F)];
        let limit = LIMITS[usize::from((config >> 4) & 0x03)];
        // Memory: read_pdu holds one PDU (at most the limit), PduBuffer the same plus what the
        // peer sent early (at most one read), plus the decoded PDU and its round trip.
        let budget = 8 * (limit as usize + PDU_HEADER) + 16 * stream.len() + (1 << 20);

        ward_fuzz::with_budget(budget, || {
            // Reference: read_pdu over the whole stream, until the first error.
            let mut rest = stream;
            let mut expected = Vec::new();
            loop {
                let before = rest.len();
                let read = block_on(pdu::read_pdu(&mut rest, limit));
                let done = read.is_err();
                if let Ok(incoming) = &read {
                    check_round_trip(incoming, limit);
                }
                expected.push((outcome(&read), before));
                if done {
                    break;
                }
            }

            // The cancel-safe reader over a slow stream, dropped every time it waits.
            let mut reader = Stutter::new(stream, chunk);
            let mut buffer = PduBuffer::default();
            for (i, (want, before)) in expected.iter().enumerate() {
                let got = loop {
                    if let Some(read) = poll_once(buffer.read(&mut reader, limit)) {
                        break outcome(&read);
                    }
                };
                // read_pdu reports a header cut short by the end of the stream as Closed;
                // PduBuffer, which has the partial header buffered, as malformed. Both end
                // the association the same way.
                let cut_header = *want == Outcome::Closed
                    && got == Outcome::Malformed
                    && (1..PDU_HEADER).contains(before);
                assert!(got == *want || cut_header, "PDU {i}: PduBuffer {got:?}, read_pdu {want:?}");
            }
        });
    }
);
