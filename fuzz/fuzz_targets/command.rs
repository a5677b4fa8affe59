//! DIMSE command sets: `Command::decode`, the accessors the SCPs call, and `Command::encode`.
//!
//! Input: one configuration byte (unused, kept so every target's input has the same shape),
//! then the command set as it arrives in command PDVs.
//!
//! Properties:
//! - decoding and every accessor return errors, never panic, and allocate at most a constant
//!   factor of the input;
//! - round trip: `decode(encode(decode(x))) == decode(x)` up to (0000,0000) Command Group
//!   Length, which `encode` always writes correctly whatever `x` declared (it is equal too when
//!   `x` declared it correctly), and `encode` is stable from then on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_dimse::command::{Command, MAX_COMMAND_SET, tag};

/// Every element the SCPs read, as u16 or as text.
const U16_ELEMENTS: &[u16] = &[
    tag::COMMAND_FIELD,
    tag::MESSAGE_ID,
    tag::MESSAGE_ID_BEING_RESPONDED_TO,
    tag::PRIORITY,
    tag::COMMAND_DATA_SET_TYPE,
    tag::STATUS,
    tag::REMAINING_SUBOPERATIONS,
    tag::COMPLETED_SUBOPERATIONS,
    tag::FAILED_SUBOPERATIONS,
    tag::WARNING_SUBOPERATIONS,
    tag::MOVE_ORIGINATOR_MESSAGE_ID,
];
const TEXT_ELEMENTS: &[u16] = &[
    tag::AFFECTED_SOP_CLASS_UID,
    tag::ERROR_COMMENT,
    tag::AFFECTED_SOP_INSTANCE_UID,
    tag::MOVE_DESTINATION,
    tag::MOVE_ORIGINATOR_AE_TITLE,
];

fuzz_target!(
    init: ward_fuzz::init("command", ward_fuzz::seeds::command, || {}),
    |data: &[u8]| {
        let Some((_, bytes)) = data.split_first() else {
            return;
        };
        ward_fuzz::with_budget(ward_fuzz::parse_budget(bytes.len()), || {
            let Ok(command) = Command::decode(bytes) else {
                return;
            };
            let _ = command.command_field();
            let _ = command.has_data_set();
            for &element in U16_ELEMENTS {
                let _ = command.u16(element);
            }
            for &element in TEXT_ELEMENTS {
                let _ = command.string(element);
            }

            let encoded = command.encode();
            let body_len = u32::try_from(encoded.len() - 12).expect("bounded by the input");
            if encoded.len() > MAX_COMMAND_SET {
                // Only when `bytes` lacked a group length and sat within 12 bytes of the limit:
                // the re-encoding, with its group length added, is over it. Ward encodes only
                // command sets it builds itself, which are a few hundred bytes.
                return;
            }
            let again = Command::decode(&encoded).expect("Ward's encoding of a command decodes");
            assert_eq!(
                again.get(tag::GROUP_LENGTH),
                Some(&body_len.to_le_bytes()[..]),
                "group length covers the elements after it"
            );
            assert_eq!(again.encode(), encoded, "encode(decode(encode(c))) == encode(c)");
            if command.get(tag::GROUP_LENGTH) == again.get(tag::GROUP_LENGTH) {
                assert_eq!(again, command, "decode(encode(decode(x))) == decode(x)");
            }
        });
    }
);
