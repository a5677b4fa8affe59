//! Validated newtypes shared by every Ward crate.
//!
//! Values that arrive from peers (UIDs, AE titles, operation lists, address patterns) are parsed
//! once, at the edge, into these types; code past the edge never re-validates them. Nothing here
//! does I/O.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("UID is empty")]
    EmptyUid,
    #[error("UID is {0} characters long; the limit is 64")]
    UidTooLong(usize),
    #[error("UID contains a character other than digits and dots")]
    UidCharacter,
    #[error("UID has an empty component")]
    UidEmptyComponent,
    #[error("UID has a component with a leading zero")]
    UidLeadingZero,
    #[error("AE title is empty")]
    EmptyAeTitle,
    #[error("AE title is {0} bytes long; the limit is 16")]
    AeTitleTooLong(usize),
    #[error("AE title contains a backslash, a control character or a non-ASCII character")]
    AeTitleCharacter,
    #[error("unknown operation {0:?} (expected echo, store, find, get or move)")]
    UnknownOperation(String),
    #[error("invalid address pattern {0:?} (expected IP or IP/PREFIX)")]
    HostPattern(String),
    #[error("invalid {0} {1:?}")]
    Unknown(&'static str, String),
}

/// A DICOM unique identifier (VR UI, PS3.5 §9.1): 1–64 characters, digits and dots, no empty
/// component, no leading zero in a multi-digit component.
///
/// Because a `Uid` can only hold digits and dots it can never carry a path separator, but Ward
/// still never derives a file name from one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uid(String);

impl Uid {
    /// Parses a UID as it appears in a data element: trailing NUL or space padding is removed
    /// (PS3.5 pads UI values to even length with NUL), nothing else is forgiven.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let s = raw.trim_end_matches(['\0', ' ']);
        if s.is_empty() {
            return Err(InvalidValue::EmptyUid);
        }
        if s.len() > 64 {
            return Err(InvalidValue::UidTooLong(s.len()));
        }
        if !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(InvalidValue::UidCharacter);
        }
        for component in s.split('.') {
            if component.is_empty() {
                return Err(InvalidValue::UidEmptyComponent);
            }
            if component.len() > 1 && component.starts_with('0') {
                return Err(InvalidValue::UidLeadingZero);
            }
        }
        Ok(Uid(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Uid {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uid::parse(s)
    }
}

impl TryFrom<String> for Uid {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Uid::parse(&s)
    }
}

impl From<Uid> for String {
    fn from(u: Uid) -> String {
        u.0
    }
}

/// An application entity title (VR AE, PS3.5 §6.2): up to 16 bytes of the default character
/// repertoire without backslash or control characters; leading and trailing spaces are not
/// significant and are removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AeTitle(String);

impl AeTitle {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.len() > 16 {
            return Err(InvalidValue::AeTitleTooLong(raw.len()));
        }
        let s = raw.trim_matches([' ', '\0']);
        if s.is_empty() {
            return Err(InvalidValue::EmptyAeTitle);
        }
        if !s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
            return Err(InvalidValue::AeTitleCharacter);
        }
        Ok(AeTitle(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AeTitle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AeTitle {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AeTitle::parse(s)
    }
}

impl TryFrom<String> for AeTitle {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AeTitle::parse(&s)
    }
}

impl From<AeTitle> for String {
    fn from(a: AeTitle) -> String {
        a.0
    }
}

/// Ward's implementation class UID (PS3.7 D.3.3.2), sent in every association and written into
/// every Part 10 meta group Ward produces. It lives under the `2.25` arc (ISO/IEC 9834-8, a UUID
/// as a UID), which needs no registered root.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.45732420751261496902990707637958000720";

/// Ward's implementation version name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("WARD_", env!("CARGO_PKG_VERSION"));

/// A peer registered with Ward: who it is, where it may connect from, where it listens (for
/// C-MOVE destinations) and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AePeer {
    pub aet: AeTitle,
    pub host: HostPattern,
    pub port: Option<u16>,
    pub allow: OperationSet,
    /// A certificate pinned for this AE (SHA-256 of its DER): accepted over TLS in addition to
    /// certificates Ward's own CA issued to this AE title.
    pub cert_sha256: Option<[u8; 32]>,
    /// A legacy modality that cannot do TLS: plain TCP is accepted from its registered address
    /// even when that is not loopback. Listed as a risk wherever the registry is shown.
    pub legacy_plain: bool,
    /// Whether associations from this AE must identify a user (PS3.7 D.3.3.7).
    pub identity: IdentityMode,
}

/// What user identity an AE's associations must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdentityMode {
    /// User identity is not asked for; one sent is still checked and recorded.
    #[default]
    None,
    /// An association may identify a user; if it does, the identity must check out.
    Optional,
    /// Every association must identify a user with a passcode or a token that checks out.
    Required,
}

impl IdentityMode {
    pub fn name(self) -> &'static str {
        match self {
            IdentityMode::None => "none",
            IdentityMode::Optional => "optional",
            IdentityMode::Required => "required",
        }
    }
}

impl FromStr for IdentityMode {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(IdentityMode::None),
            "optional" => Ok(IdentityMode::Optional),
            "required" => Ok(IdentityMode::Required),
            other => Err(InvalidValue::Unknown("identity mode", other.to_owned())),
        }
    }
}

impl fmt::Display for IdentityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything, including queries that enumerate patients.
    Administrator,
    /// Query and retrieve images.
    Clinician,
    /// Send images.
    Modality,
    /// Read the audit trail; no images.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Administrator,
        Role::Clinician,
        Role::Modality,
        Role::Auditor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Clinician => "clinician",
            Role::Modality => "modality",
            Role::Auditor => "auditor",
        }
    }

    /// The DIMSE operations the role allows.
    pub fn operations(self) -> OperationSet {
        let ops: &[Operation] = match self {
            Role::Administrator => &Operation::ALL,
            Role::Clinician => &[
                Operation::Echo,
                Operation::Find,
                Operation::Get,
                Operation::Move,
            ],
            Role::Modality => &[Operation::Echo, Operation::Store],
            Role::Auditor => &[Operation::Echo],
        };
        ops.iter().copied().collect()
    }
}

impl FromStr for Role {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| InvalidValue::Unknown("role", s.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A local user name: 1–64 characters of letters, digits and `._-@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if ok {
            Ok(UserName(raw.to_owned()))
        } else {
            Err(InvalidValue::Unknown("user name", raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UserName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserName::parse(s)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The attributes of one instance that the index keeps, read from the instance's header (the
/// data set up to Pixel Data) and decoded to UTF-8. Optional values are `None` when the
/// attribute is absent or empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceAttributes {
    pub specific_character_set: Option<String>,
    // Patient level
    pub patient_id: Option<String>,
    pub issuer_of_patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    // Study level
    pub study_instance_uid: Option<Uid>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub study_id: Option<String>,
    pub study_description: Option<String>,
    pub referring_physician_name: Option<String>,
    // Series level
    pub series_instance_uid: Option<Uid>,
    pub modality: Option<String>,
    pub series_number: Option<String>,
    pub series_description: Option<String>,
    pub series_date: Option<String>,
    pub series_time: Option<String>,
    pub body_part_examined: Option<String>,
    // Instance level
    pub sop_class_uid: Option<Uid>,
    pub sop_instance_uid: Option<Uid>,
    pub instance_number: Option<String>,
    pub content_date: Option<String>,
    pub content_time: Option<String>,
    pub rows: Option<u16>,
    pub columns: Option<u16>,
    pub number_of_frames: Option<String>,
}

/// A DIMSE operation a peer may be allowed to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Echo,
    Store,
    Find,
    Get,
    Move,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Echo,
        Operation::Store,
        Operation::Find,
        Operation::Get,
        Operation::Move,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Echo => "echo",
            Operation::Store => "store",
            Operation::Find => "find",
            Operation::Get => "get",
            Operation::Move => "move",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl FromStr for Operation {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| InvalidValue::UnknownOperation(s.to_owned()))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of operations, written as a comma-separated list (`echo,store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OperationSet(u8);

impl OperationSet {
    pub const EMPTY: OperationSet = OperationSet(0);

    pub fn contains(self, op: Operation) -> bool {
        self.0 & op.bit() != 0
    }

    pub fn with(self, op: Operation) -> OperationSet {
        OperationSet(self.0 | op.bit())
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Operation> {
        Operation::ALL
            .into_iter()
            .filter(move |op| self.contains(*op))
    }
}

impl FromIterator<Operation> for OperationSet {
    fn from_iter<T: IntoIterator<Item = Operation>>(iter: T) -> Self {
        iter.into_iter()
            .fold(OperationSet::EMPTY, OperationSet::with)
    }
}

impl FromStr for OperationSet {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Operation::from_str)
            .collect()
    }
}

impl fmt::Display for OperationSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Operation::name).collect();
        f.write_str(&names.join(","))
    }
}

/// The addresses a registered peer may connect from: one IP address or a network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostPattern(ipnet::IpNet);

impl HostPattern {
    /// Whether `addr` lies inside the pattern. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as a
    /// dual-stack socket reports IPv4 peers) are compared as the IPv4 address they carry.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr.to_canonical())
    }

    /// The one address the pattern names, if it is a single address rather than a network.
    pub fn single_address(&self) -> Option<IpAddr> {
        (self.0.prefix_len() == self.0.max_prefix_len()).then(|| self.0.addr())
    }

    /// Whether every address of the pattern is a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.0.network().is_loopback() && self.0.broadcast().is_loopback()
    }
}

impl FromStr for HostPattern {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(HostPattern(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| HostPattern(ipnet::IpNet::from(ip.to_canonical())))
            .map_err(|_| InvalidValue::HostPattern(s.to_owned()))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_rules() {
        assert!(Uid::parse("1.2.840.10008.1.1").is_ok());
        assert_eq!(Uid::parse("1.2.3\0").unwrap().as_str(), "1.2.3");
        assert_eq!(Uid::parse(""), Err(InvalidValue::EmptyUid));
        assert_eq!(Uid::parse("1.2/../3"), Err(InvalidValue::UidCharacter));
        assert_eq!(Uid::parse("../etc"), Err(InvalidValue::UidCharacter));
        assert_eq!(Uid::parse("1..2"), Err(InvalidValue::UidEmptyComponent));
        assert_eq!(Uid::parse(".1"), Err(InvalidValue::UidEmptyComponent));
        assert_eq!(Uid::parse("1.02"), Err(InvalidValue::UidLeadingZero));
        assert!(Uid::parse("1.0.2").is_ok());
        let long = format!("1.{}", "2".repeat(63));
        assert_eq!(Uid::parse(&long), Err(InvalidValue::UidTooLong(65)));
        assert!(Uid::parse(&long[..64]).is_ok());
    }

    #[test]
    fn ae_title_rules() {
        assert_eq!(AeTitle::parse(" STORESCU  ").unwrap().as_str(), "STORESCU");
        assert_eq!(AeTitle::parse("    "), Err(InvalidValue::EmptyAeTitle));
        assert_eq!(
            AeTitle::parse("ABCDEFGHIJKLMNOPQ"),
            Err(InvalidValue::AeTitleTooLong(17))
        );
        assert_eq!(AeTitle::parse("A\\B"), Err(InvalidValue::AeTitleCharacter));
        assert_eq!(AeTitle::parse("A\nB"), Err(InvalidValue::AeTitleCharacter));
        assert_eq!(AeTitle::parse("Ä"), Err(InvalidValue::AeTitleCharacter));
        assert!(
            AeTitle::parse("A;$(rm -rf)").is_ok(),
            "shell metacharacters are data"
        );
    }

    #[test]
    fn operation_sets() {
        let set: OperationSet = "echo, store".parse().unwrap();
        assert!(set.contains(Operation::Echo) && set.contains(Operation::Store));
        assert!(!set.contains(Operation::Find));
        assert_eq!(set.to_string(), "echo,store");
        assert!("echo,delete".parse::<OperationSet>().is_err());
        assert!("".parse::<OperationSet>().unwrap().is_empty());
    }

    #[test]
    fn roles_identity_modes_and_user_names() {
        assert_eq!("Clinician".parse::<Role>().unwrap(), Role::Clinician);
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Administrator.operations().contains(Operation::Store));
        assert!(!Role::Clinician.operations().contains(Operation::Store));
        assert!(Role::Modality.operations().contains(Operation::Store));
        assert!(!Role::Auditor.operations().contains(Operation::Find));
        assert_eq!(
            "required".parse::<IdentityMode>().unwrap(),
            IdentityMode::Required
        );
        assert!("sometimes".parse::<IdentityMode>().is_err());
        assert!(UserName::parse("dr.jones@ward").is_ok());
        assert!(UserName::parse("").is_err());
        assert!(UserName::parse("a b").is_err());
        assert!(UserName::parse("a/b").is_err());
        assert!(UserName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn host_patterns() {
        let one: HostPattern = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(one.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(one.is_loopback());
        let net: HostPattern = "10.1.2.3/16".parse().unwrap();
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert!(net.contains("10.1.200.7".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.is_loopback());
        assert!("example.org".parse::<HostPattern>().is_err());
        let v6: HostPattern = "::1".parse().unwrap();
        assert!(v6.is_loopback() && v6.contains("::1".parse().unwrap()));
    }
}
