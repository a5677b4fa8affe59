//! A deliberately naive DIMSE client over a blocking socket, for sending what no well-behaved
//! client would: hostile lengths, truncated data, commands missing fields.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use dicom_ul::pdu::{AssociationRQ, Pdu, PresentationContextProposed};
use ward_dimse::command::{Command, CommandField, tag};

/// PDU types (PS3.8 §9.3).
pub const ASSOCIATE_AC: u8 = 0x02;
pub const ASSOCIATE_RJ: u8 = 0x03;
pub const P_DATA: u8 = 0x04;
pub const RELEASE_RP: u8 = 0x06;
pub const ABORT: u8 = 0x07;

pub struct Raw {
    pub stream: TcpStream,
}

/// What came back for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A whole PDU: type and body.
    Pdu(u8, Vec<u8>),
    /// The server closed the connection.
    Closed,
}

impl Raw {
    pub fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one PDU (bodies up to 16 MiB), or `Closed`.
    pub fn read(&mut self) -> Answer {
        let mut header = [0u8; 6];
        if self.stream.read_exact(&mut header).is_err() {
            return Answer::Closed;
        }
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        assert!(len <= 16 << 20, "server sent a {len}-byte PDU");
        let mut body = vec![0u8; len];
        if self.stream.read_exact(&mut body).is_err() {
            return Answer::Closed;
        }
        Answer::Pdu(header[0], body)
    }

    /// Sends an A-ASSOCIATE-RQ and returns the answer.
    pub fn associate(
        &mut self,
        calling: &str,
        called: &str,
        contexts: &[(u8, &str, &[&str])],
    ) -> Answer {
        let bytes = associate_rq(calling, called, contexts);
        if self.send(&bytes).is_err() {
            return Answer::Closed;
        }
        self.read()
    }

    /// Sends one PDV in one P-DATA-TF PDU.
    pub fn pdv(
        &mut self,
        context: u8,
        command: bool,
        last: bool,
        data: &[u8],
    ) -> std::io::Result<()> {
        let mut pdu = vec![P_DATA, 0];
        pdu.extend_from_slice(&((data.len() + 6) as u32).to_be_bytes());
        pdu.extend_from_slice(&((data.len() + 2) as u32).to_be_bytes());
        pdu.push(context);
        pdu.push(u8::from(command) | (u8::from(last) << 1));
        pdu.extend_from_slice(data);
        self.send(&pdu)
    }

    /// Sends a C-STORE-RQ command and the data set, then reads the response: the status, or
    /// `None` if the server aborted or closed.
    pub fn c_store(&mut self, context: u8, command: &Command, dataset: &[u8]) -> Option<u16> {
        self.pdv(context, true, true, &command.encode()).ok()?;
        // Data in PDVs of at most 16 KiB, as a cautious SCU would send it.
        let chunks: Vec<&[u8]> = if dataset.is_empty() {
            vec![&[]]
        } else {
            dataset.chunks(16 * 1024).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            if self
                .pdv(context, false, i + 1 == chunks.len(), chunk)
                .is_err()
            {
                break;
            }
        }
        self.read_status()
    }

    /// Reads the next response command and returns its status.
    pub fn read_status(&mut self) -> Option<u16> {
        let mut bytes = Vec::new();
        loop {
            match self.read() {
                Answer::Pdu(P_DATA, body) => {
                    let mut rest = &body[..];
                    while rest.len() >= 6 {
                        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                        let item = &rest[4..4 + len];
                        bytes.extend_from_slice(&item[2..]);
                        if item[1] & 0x02 != 0 {
                            let cmd = Command::decode(&bytes).expect("server sends valid commands");
                            return cmd.status().ok();
                        }
                        rest = &rest[4 + len..];
                    }
                }
                _ => return None,
            }
        }
    }

    /// A-RELEASE-RQ; true if the server answered with A-RELEASE-RP.
    pub fn release(&mut self) -> bool {
        let _ = self.send(&[0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
        matches!(self.read(), Answer::Pdu(RELEASE_RP, _))
    }
}

/// The bytes of an A-ASSOCIATE-RQ with the given contexts (id, abstract syntax, transfer syntaxes).
pub fn associate_rq(calling: &str, called: &str, contexts: &[(u8, &str, &[&str])]) -> Vec<u8> {
    let rq = AssociationRQ {
        protocol_version: 1,
        calling_ae_title: calling.to_owned(),
        called_ae_title: called.to_owned(),
        application_context_name: ward_dimse::negotiation::APPLICATION_CONTEXT.to_owned(),
        presentation_contexts: contexts
            .iter()
            .map(|(id, abs, ts)| PresentationContextProposed {
                id: *id,
                abstract_syntax: (*abs).to_owned(),
                transfer_syntaxes: ts.iter().map(|t| (*t).to_owned()).collect(),
            })
            .collect(),
        user_variables: ward_dimse::negotiation::our_user_variables(64 * 1024),
    };
    let mut out = Vec::new();
    dicom_ul::pdu::write_pdu(&mut out, &Pdu::AssociationRQ(rq)).expect("RQ encodes");
    out
}

/// A C-STORE-RQ command set.
pub fn c_store_rq(message_id: u16, sop_class: Option<&str>, sop_instance: &str) -> Command {
    let mut c = Command::default();
    if let Some(class) = sop_class {
        c.set_uid(tag::AFFECTED_SOP_CLASS_UID, class);
    }
    c.set_u16(tag::COMMAND_FIELD, CommandField::CStoreRq.to_u16())
        .set_u16(tag::MESSAGE_ID, message_id)
        .set_u16(tag::PRIORITY, 0)
        .set_u16(tag::COMMAND_DATA_SET_TYPE, 0)
        .set_uid(tag::AFFECTED_SOP_INSTANCE_UID, sop_instance);
    c
}
