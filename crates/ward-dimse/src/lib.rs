//! Ward's DICOM upper layer: PDU framing with strict limits, DIMSE command sets, presentation
//! context negotiation, the association acceptor with its SCP services, and the requestor.
//!
//! dicom-ul supplies the PDU types and their body codec; everything above the PDU (association
//! state, timeouts, P-DATA fragmenting, DIMSE) is here. This crate knows nothing of HTTP.

pub mod client;
pub mod command;
mod find;
pub mod negotiation;
pub mod pdu;
mod retrieve;
pub mod server;
mod session;
mod store;

pub use client::{
    ClientAssociation, ClientError, ClientOptions, ContextResult, PeerImplementation, Proposal,
};
pub use server::{Server, ServerConfig};
