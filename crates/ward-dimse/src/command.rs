//! DIMSE command sets (PS3.7 §9.3, §E): group 0000 elements, always implicit VR little endian.
//!
//! Written by hand rather than through dicom-object because a command set is a flat list of a
//! dozen small elements, and decoding it must be strict about lengths: a command set arrives
//! from an unauthenticated peer and dicom-object would allocate a declared length up front.

use std::collections::BTreeMap;

/// Largest command set Ward accepts. Real ones are a few hundred bytes.
pub const MAX_COMMAND_SET: usize = 64 * 1024;

/// Command field values (PS3.7 §E.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandField {
    CStoreRq,
    CStoreRsp,
    CEchoRq,
    CEchoRsp,
    CFindRq,
    CGetRq,
    CMoveRq,
    CCancelRq,
    Other(u16),
}

impl CommandField {
    pub fn from_u16(v: u16) -> CommandField {
        match v {
            0x0001 => CommandField::CStoreRq,
            0x8001 => CommandField::CStoreRsp,
            0x0030 => CommandField::CEchoRq,
            0x8030 => CommandField::CEchoRsp,
            0x0020 => CommandField::CFindRq,
            0x0010 => CommandField::CGetRq,
            0x0021 => CommandField::CMoveRq,
            0x0FFF => CommandField::CCancelRq,
            other => CommandField::Other(other),
        }
    }

    pub fn to_u16(self) -> u16 {
        match self {
            CommandField::CStoreRq => 0x0001,
            CommandField::CStoreRsp => 0x8001,
            CommandField::CEchoRq => 0x0030,
            CommandField::CEchoRsp => 0x8030,
            CommandField::CFindRq => 0x0020,
            CommandField::CGetRq => 0x0010,
            CommandField::CMoveRq => 0x0021,
            CommandField::CCancelRq => 0x0FFF,
            CommandField::Other(v) => v,
        }
    }
}

/// Element numbers of group 0000 that Ward reads or writes.
pub mod tag {
    pub const GROUP_LENGTH: u16 = 0x0000;
    pub const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
    pub const COMMAND_FIELD: u16 = 0x0100;
    pub const MESSAGE_ID: u16 = 0x0110;
    pub const MESSAGE_ID_BEING_RESPONDED_TO: u16 = 0x0120;
    pub const PRIORITY: u16 = 0x0700;
    pub const COMMAND_DATA_SET_TYPE: u16 = 0x0800;
    pub const STATUS: u16 = 0x0900;
    pub const ERROR_COMMENT: u16 = 0x0902;
    pub const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
    pub const MOVE_DESTINATION: u16 = 0x0600;
    pub const REMAINING_SUBOPERATIONS: u16 = 0x1020;
    pub const COMPLETED_SUBOPERATIONS: u16 = 0x1021;
    pub const FAILED_SUBOPERATIONS: u16 = 0x1022;
    pub const WARNING_SUBOPERATIONS: u16 = 0x1023;
    pub const MOVE_ORIGINATOR_AE_TITLE: u16 = 0x1030;
    pub const MOVE_ORIGINATOR_MESSAGE_ID: u16 = 0x1031;
}

/// Command Data Set Type value meaning "no data set follows".
pub const NO_DATA_SET: u16 = 0x0101;
/// A Command Data Set Type value meaning "a data set follows" (any value but 0x0101 does).
pub const DATA_SET_PRESENT: u16 = 0x0001;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command set is larger than {MAX_COMMAND_SET} bytes")]
    TooLarge,
    #[error("command set is truncated")]
    Truncated,
    #[error("command set holds an element outside group 0000")]
    WrongGroup,
    #[error("command set elements are not in ascending order")]
    Order,
    #[error("command element (0000,{0:04X}) is missing")]
    Missing(u16),
    #[error("command element (0000,{0:04X}) has a malformed value")]
    Malformed(u16),
}

/// A decoded command set: element number → raw value bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    elements: BTreeMap<u16, Vec<u8>>,
}

impl Command {
    /// Decodes an implicit VR little endian group 0000, checking every declared length against
    /// the bytes that remain.
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        if bytes.len() > MAX_COMMAND_SET {
            return Err(CommandError::TooLarge);
        }
        let mut elements = BTreeMap::new();
        let mut rest = bytes;
        let mut last: Option<u16> = None;
        while !rest.is_empty() {
            let (header, tail) = rest.split_at_checked(8).ok_or(CommandError::Truncated)?;
            let group = u16::from_le_bytes([header[0], header[1]]);
            let element = u16::from_le_bytes([header[2], header[3]]);
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if group != 0x0000 {
                return Err(CommandError::WrongGroup);
            }
            if last.is_some_and(|l| element <= l) {
                return Err(CommandError::Order);
            }
            let len = usize::try_from(len).map_err(|_| CommandError::Truncated)?;
            let (value, tail) = tail.split_at_checked(len).ok_or(CommandError::Truncated)?;
            elements.insert(element, value.to_vec());
            last = Some(element);
            rest = tail;
        }
        Ok(Command { elements })
    }

    /// Encodes the command set with a correct group length first.
    pub fn encode(&self) -> Vec<u8> {
        let body_len: usize = self
            .elements
            .iter()
            .filter(|(el, _)| **el != tag::GROUP_LENGTH)
            .map(|(_, v)| 8 + v.len())
            .sum();
        let mut out = Vec::with_capacity(12 + body_len);
        push_element(
            &mut out,
            tag::GROUP_LENGTH,
            &(body_len as u32).to_le_bytes(),
        );
        for (el, value) in &self.elements {
            if *el != tag::GROUP_LENGTH {
                push_element(&mut out, *el, value);
            }
        }
        out
    }

    pub fn get(&self, element: u16) -> Option<&[u8]> {
        self.elements.get(&element).map(Vec::as_slice)
    }

    pub fn u16(&self, element: u16) -> Result<u16, CommandError> {
        let v = self.get(element).ok_or(CommandError::Missing(element))?;
        let bytes: [u8; 2] = v.try_into().map_err(|_| CommandError::Malformed(element))?;
        Ok(u16::from_le_bytes(bytes))
    }

    /// A string value (UI, AE, LO…) without its padding. `Ok(None)` when absent.
    pub fn string(&self, element: u16) -> Result<Option<String>, CommandError> {
        match self.get(element) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .map(|s| Some(s.trim_end_matches(['\0', ' ']).trim_start().to_owned()))
                .map_err(|_| CommandError::Malformed(element)),
        }
    }

    pub fn command_field(&self) -> Result<CommandField, CommandError> {
        self.u16(tag::COMMAND_FIELD).map(CommandField::from_u16)
    }

    pub fn message_id(&self) -> Result<u16, CommandError> {
        self.u16(tag::MESSAGE_ID)
    }

    /// Whether a data set follows this command.
    pub fn has_data_set(&self) -> Result<bool, CommandError> {
        self.u16(tag::COMMAND_DATA_SET_TYPE)
            .map(|t| t != NO_DATA_SET)
    }

    pub fn status(&self) -> Result<u16, CommandError> {
        self.u16(tag::STATUS)
    }

    pub fn set_u16(&mut self, element: u16, value: u16) -> &mut Self {
        self.elements.insert(element, value.to_le_bytes().to_vec());
        self
    }

    /// Sets a UI value, padded with NUL to even length as PS3.5 requires.
    pub fn set_uid(&mut self, element: u16, value: &str) -> &mut Self {
        self.set_padded(element, value, 0)
    }

    /// Sets a text value (AE, LO…), padded with a space to even length.
    pub fn set_text(&mut self, element: u16, value: &str) -> &mut Self {
        self.set_padded(element, value, b' ')
    }

    fn set_padded(&mut self, element: u16, value: &str, pad: u8) -> &mut Self {
        let mut bytes = value.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(pad);
        }
        self.elements.insert(element, bytes);
        self
    }

    /// A request without a data set, or a response: the common shape of every message.
    pub fn new(field: CommandField, sop_class: &str) -> Command {
        let mut c = Command::default();
        c.set_uid(tag::AFFECTED_SOP_CLASS_UID, sop_class)
            .set_u16(tag::COMMAND_FIELD, field.to_u16())
            .set_u16(tag::COMMAND_DATA_SET_TYPE, NO_DATA_SET);
        c
    }

    /// A response to `request_id` with `status`.
    pub fn response(field: CommandField, sop_class: &str, request_id: u16, status: u16) -> Command {
        let mut c = Command::new(field, sop_class);
        c.set_u16(tag::MESSAGE_ID_BEING_RESPONDED_TO, request_id)
            .set_u16(tag::STATUS, status);
        c
    }
}

fn push_element(out: &mut Vec<u8>, element: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// DIMSE status codes Ward sends (PS3.7 Annex C, PS3.4 Annex B and C). The storage codes come
/// from the ingest path, which STOW-RS shares.
pub mod status {
    pub use ward_ingest::status::{
        CANNOT_UNDERSTAND, DATA_SET_MISMATCH, DUPLICATE_SOP_INSTANCE, OUT_OF_RESOURCES, SUCCESS,
    };

    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    pub const NOT_AUTHORIZED: u16 = 0x0124;
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
    /// C-FIND/GET/MOVE: matches or sub-operations continue.
    pub const PENDING: u16 = 0xFF00;
    /// C-FIND/GET/MOVE: terminated by a C-CANCEL.
    pub const CANCEL: u16 = 0xFE00;
    /// C-FIND/GET/MOVE failure "unable to process" (0xCxxx).
    pub const UNABLE_TO_PROCESS: u16 = 0xC001;
    /// C-MOVE: refused, move destination unknown.
    pub const MOVE_DESTINATION_UNKNOWN: u16 = 0xA801;
    /// C-GET/MOVE: refused, out of resources, unable to perform sub-operations.
    pub const UNABLE_TO_PERFORM_SUBOPERATIONS: u16 = 0xA702;
    /// C-GET/MOVE: sub-operations complete, one or more failures or warnings.
    pub const SUBOPERATIONS_WITH_FAILURES: u16 = 0xB000;

    /// Whether a status is a success or a warning (PS3.7 C.3): anything else is a failure.
    pub fn is_success_or_warning(status: u16) -> bool {
        status == SUCCESS || (status & 0xF000) == 0xB000 || status == 0x0107 || status == 0x0116
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut c = Command::new(CommandField::CStoreRq, "1.2.840.10008.5.1.4.1.1.2");
        c.set_u16(tag::MESSAGE_ID, 7)
            .set_u16(tag::COMMAND_DATA_SET_TYPE, 0x0000)
            .set_uid(tag::AFFECTED_SOP_INSTANCE_UID, "1.2.3")
            .set_text(tag::MOVE_ORIGINATOR_AE_TITLE, "ABC");
        let bytes = c.encode();
        let d = Command::decode(&bytes).unwrap();
        assert_eq!(d.command_field().unwrap(), CommandField::CStoreRq);
        assert_eq!(d.message_id().unwrap(), 7);
        assert!(d.has_data_set().unwrap());
        assert_eq!(
            d.string(tag::AFFECTED_SOP_INSTANCE_UID).unwrap().as_deref(),
            Some("1.2.3")
        );
        assert_eq!(
            d.string(tag::MOVE_ORIGINATOR_AE_TITLE).unwrap().as_deref(),
            Some("ABC")
        );
        // group length covers everything after itself
        let gl = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(gl, bytes.len() - 12);
        assert_eq!(d.encode(), bytes);
    }

    #[test]
    fn hostile_lengths_are_refused() {
        // element declaring 4 GB in 12 bytes
        let mut b = vec![0, 0, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff];
        b.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(Command::decode(&b), Err(CommandError::Truncated));
        assert_eq!(Command::decode(&[0, 0, 0]), Err(CommandError::Truncated));
        let wrong_group = [8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Command::decode(&wrong_group), Err(CommandError::WrongGroup));
        assert_eq!(
            Command::decode(&vec![0; MAX_COMMAND_SET + 1]),
            Err(CommandError::TooLarge)
        );
    }

    #[test]
    fn missing_and_malformed_fields() {
        let mut c = Command::default();
        c.set_u16(tag::COMMAND_FIELD, 0x0030);
        let d = Command::decode(&c.encode()).unwrap();
        assert_eq!(d.message_id(), Err(CommandError::Missing(tag::MESSAGE_ID)));
        let mut bad = Command::default();
        bad.set_uid(tag::MESSAGE_ID, "123");
        let d = Command::decode(&bad.encode()).unwrap();
        assert_eq!(
            d.message_id(),
            Err(CommandError::Malformed(tag::MESSAGE_ID))
        );
    }

    #[test]
    fn out_of_order_elements_are_refused() {
        let mut b = Vec::new();
        push_element(&mut b, 0x0100, &[0x30, 0]);
        push_element(&mut b, 0x0002, b"12");
        assert_eq!(Command::decode(&b), Err(CommandError::Order));
    }
}
