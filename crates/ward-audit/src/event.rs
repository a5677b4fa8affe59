//! What an audit record says: who did what, and how it ended.

use serde::{Deserialize, Serialize};

/// One audit event. Serialised as one JSON object per record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    pub action: Action,
    pub outcome: Outcome,
    pub actor: Actor,
    /// Free-form, e.g. `{"sop_instance_uid": "...", "keys": {...}, "matches": 3}`. The keys in
    /// [`detail_keys`] are the ones the DICOM audit message export understands.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// A successful event with no detail.
    pub fn new(action: Action, actor: Actor) -> Self {
        Self {
            action,
            outcome: Outcome::Success,
            actor,
            detail: serde_json::Value::Null,
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// What happened. The names are part of the file format: renaming a variant makes older
/// logs unreadable, so only add.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    ApplicationStart,
    ApplicationStop,
    AssociationStart,
    AssociationEnd,
    AssociationRejected,
    Store,
    Query,
    Retrieve,
    Refusal,
    Login,
    LoginFailed,
    ConfigChange,
    RegistryChange,
    SecurityAlert,
    AuditRead,
    /// A read of users, tokens, the AE registry or statistics through the admin API.
    AdminRead,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure {
        /// The DIMSE or HTTP status sent, when there was one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        reason: String,
    },
}

/// Who acted. Every field is optional because each front door knows different things: a
/// legacy modality has an address and an AE title, a viewer has a user and a certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ae_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The peer's address, `ip:port` or `ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The subject of the client certificate, when mutual TLS identified the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// Keys of [`AuditEvent::detail`] with a fixed meaning. Callers should use them so that the
/// DICOM audit message export finds patients, studies and instances; any other key is kept in
/// the log but not exported.
pub mod detail_keys {
    /// A string: the Patient ID concerned.
    pub const PATIENT_ID: &str = "patient_id";
    /// An array of strings: several Patient IDs (a retrieve across patients).
    pub const PATIENT_IDS: &str = "patient_ids";
    /// A string: the patient's name, exported only when one patient is named.
    pub const PATIENT_NAME: &str = "patient_name";
    pub const STUDY_INSTANCE_UID: &str = "study_instance_uid";
    pub const STUDY_INSTANCE_UIDS: &str = "study_instance_uids";
    /// For a store or retrieve, the SOP class of the instances; for a query, the information
    /// model (C-FIND SOP class).
    pub const SOP_CLASS_UID: &str = "sop_class_uid";
    pub const SOP_INSTANCE_UID: &str = "sop_instance_uid";
    pub const SOP_INSTANCE_UIDS: &str = "sop_instance_uids";
    /// An object: the query keys as received.
    pub const KEYS: &str = "keys";
    /// A number: how many matches a query returned.
    pub const MATCHES: &str = "matches";
    /// A string choosing a [`super::Action::SecurityAlert`]'s DICOM event type: one of
    /// `node_authentication`, `security_configuration`, `software_configuration`,
    /// `restricted_function`, `audit_recording_stopped`, `audit_recording_started`. Without
    /// it, an alert about a peer exports as Node Authentication and one about Ward itself as
    /// Software Configuration.
    pub const ALERT_TYPE: &str = "alert_type";
}
