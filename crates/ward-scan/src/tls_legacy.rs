//! Offers that rustls cannot make: TLS 1.0, TLS 1.1, and TLS 1.2 with the suites BCP 195
//! (RFC 9325) forbids or discourages.
//!
//! rustls speaks only TLS 1.2/1.3 with AEAD suites and forward secrecy, so it cannot tell
//! whether a server would still take something weaker. Each offer here is a hand-built
//! ClientHello (RFC 5246 §7.4.1.2) on its own connection, offering one version and one group of
//! suites; the server's first answer tells: a ServerHello for that version with one of those
//! suites means it accepts them, an alert or a closed connection means it refuses. Nothing
//! goes on after the ServerHello: no key exchange is made, so nothing is ever encrypted or
//! authenticated here and no handshake code is needed, only the bytes of one message each way.
//!
//! What the server sends is untrusted: the parser works on a bounded prefix of the answer,
//! checks every length against the bytes it has, and never panics (unit tests feed it
//! truncated and garbage answers).

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::classify::{LegacyOffer, LegacyOutcome, LegacyProbe, SuiteKind};
use crate::pace::Pacer;

/// The offers made, in this order.
const OFFERS: [LegacyOffer; 5] = [
    LegacyOffer::Tls10,
    LegacyOffer::Tls11,
    LegacyOffer::Tls12Broken,
    LegacyOffer::Tls12StaticRsa,
    LegacyOffer::Tls12Cbc,
];

const TLS10: u16 = 0x0301;
const TLS11: u16 = 0x0302;
const TLS12: u16 = 0x0303;

const RECORD_HANDSHAKE: u8 = 22;
const RECORD_ALERT: u8 = 21;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;

/// A ServerHello with its usual extensions is a few hundred bytes; the first record may carry
/// the certificate behind it, which is not needed. Reading stops here whatever was sent.
const MAX_ANSWER: usize = 4096;

/// RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest.
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

struct Suite {
    code: u16,
    name: &'static str,
    kind: SuiteKind,
}

const fn broken(code: u16, name: &'static str, why: &'static str) -> Suite {
    Suite {
        code,
        name,
        kind: SuiteKind::Broken(why),
    }
}

const fn static_rsa(code: u16, name: &'static str, aead: bool) -> Suite {
    Suite {
        code,
        name,
        kind: SuiteKind::StaticRsa { aead },
    }
}

const fn cbc(code: u16, name: &'static str) -> Suite {
    Suite {
        code,
        name,
        kind: SuiteKind::CbcForwardSecret,
    }
}

/// Every suite offered (IANA TLS Cipher Suites registry). The AEAD suites with ECDHE or DHE
/// that RFC 9325 §4.2 recommends are not here: rustls already negotiates those.
const SUITES: &[Suite] = &[
    broken(0x0001, "TLS_RSA_WITH_NULL_MD5", "NULL encryption"),
    broken(0x0002, "TLS_RSA_WITH_NULL_SHA", "NULL encryption"),
    broken(0x003b, "TLS_RSA_WITH_NULL_SHA256", "NULL encryption"),
    broken(0xc006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA", "NULL encryption"),
    broken(0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA", "NULL encryption"),
    broken(0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", "export grade"),
    broken(0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5", "export grade"),
    broken(0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", "export grade"),
    broken(
        0x0014,
        "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA",
        "export grade",
    ),
    broken(0x0004, "TLS_RSA_WITH_RC4_128_MD5", "RC4"),
    broken(0x0005, "TLS_RSA_WITH_RC4_128_SHA", "RC4"),
    broken(0xc007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "RC4"),
    broken(0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "RC4"),
    broken(0x0009, "TLS_RSA_WITH_DES_CBC_SHA", "single DES"),
    broken(0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA", "single DES"),
    broken(
        0x000a,
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "3DES, under 128 bits",
    ),
    broken(
        0x0016,
        "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "3DES, under 128 bits",
    ),
    broken(
        0xc008,
        "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        "3DES, under 128 bits",
    ),
    broken(
        0xc012,
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "3DES, under 128 bits",
    ),
    broken(0x0018, "TLS_DH_anon_WITH_RC4_128_MD5", "anonymous"),
    broken(0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", "anonymous"),
    broken(0x003a, "TLS_DH_anon_WITH_AES_256_CBC_SHA", "anonymous"),
    broken(0x00a6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256", "anonymous"),
    broken(0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", "anonymous"),
    broken(0xc019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA", "anonymous"),
    static_rsa(0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA", false),
    static_rsa(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", false),
    static_rsa(0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256", false),
    static_rsa(0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256", false),
    static_rsa(0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", false),
    static_rsa(0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", false),
    static_rsa(0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256", true),
    static_rsa(0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384", true),
    cbc(0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    cbc(0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    cbc(0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    cbc(0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    cbc(0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    cbc(0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    cbc(0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    cbc(0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    cbc(0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"),
    cbc(0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"),
    cbc(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    cbc(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    cbc(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"),
    cbc(0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"),
    cbc(0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    cbc(0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"),
];

fn version(offer: LegacyOffer) -> u16 {
    match offer {
        LegacyOffer::Tls10 => TLS10,
        LegacyOffer::Tls11 => TLS11,
        LegacyOffer::Tls12Broken | LegacyOffer::Tls12StaticRsa | LegacyOffer::Tls12Cbc => TLS12,
    }
}

/// The suites of an offer. TLS 1.0 and 1.1 get every suite: the question there is the version,
/// and a server should find something it takes.
fn offered(offer: LegacyOffer) -> impl Iterator<Item = &'static Suite> {
    SUITES.iter().filter(move |s| match offer {
        LegacyOffer::Tls10 | LegacyOffer::Tls11 => true,
        LegacyOffer::Tls12Broken => matches!(s.kind, SuiteKind::Broken(_)),
        LegacyOffer::Tls12StaticRsa => matches!(s.kind, SuiteKind::StaticRsa { .. }),
        LegacyOffer::Tls12Cbc => matches!(s.kind, SuiteKind::CbcForwardSecret),
    })
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends `body` behind a big-endian length of `width` bytes. Every length here is bounded
/// by the fixed tables above and a DNS name (at most 253 bytes), far below any width's limit.
fn put_with_len(out: &mut Vec<u8>, width: usize, body: &[u8]) {
    let len = body.len().to_be_bytes();
    out.extend_from_slice(&len[len.len() - width..]);
    out.extend_from_slice(body);
}

fn extension(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    put_u16(out, kind);
    put_with_len(out, 2, body);
}

/// One ClientHello record offering `offer`'s version and suites, with what servers need to
/// answer it: SNI (names only, RFC 6066 §3 forbids addresses), the curves and point format for
/// ECDHE suites, signature algorithms for TLS 1.2 (RFC 5246 §7.4.1.4.1: only a TLS 1.2 hello
/// carries them), and an empty renegotiation_info (RFC 5746) for servers that insist on it.
fn client_hello(offer: LegacyOffer, sni: Option<&str>, random: [u8; 32]) -> Vec<u8> {
    let mut suites = Vec::new();
    for suite in offered(offer) {
        put_u16(&mut suites, suite.code);
    }
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let mut entry = vec![0]; // host_name
        put_with_len(&mut entry, 2, name.as_bytes());
        let mut list = Vec::new();
        put_with_len(&mut list, 2, &entry);
        extension(&mut exts, 0, &list);
    }
    // x25519, secp256r1, secp384r1, secp521r1. No RFC 7919 groups: listing them forbids a
    // server without them from choosing a DHE suite, and DHE is what is being asked about.
    let mut groups = Vec::new();
    for g in [0x001d, 0x0017, 0x0018, 0x0019] {
        put_u16(&mut groups, g);
    }
    let mut list = Vec::new();
    put_with_len(&mut list, 2, &groups);
    extension(&mut exts, 10, &list);
    extension(&mut exts, 11, &[1, 0]); // ec_point_formats: uncompressed
    if version(offer) == TLS12 {
        let mut schemes = Vec::new();
        for s in [
            0x0403, 0x0503, 0x0603, // ECDSA with SHA-256/384/512
            0x0804, 0x0805, 0x0806, // RSA-PSS (rsaEncryption keys)
            0x0401, 0x0501, 0x0601, // RSA PKCS#1 v1.5
            0x0203, 0x0201, // SHA-1: legacy servers may have nothing else
        ] {
            put_u16(&mut schemes, s);
        }
        let mut list = Vec::new();
        put_with_len(&mut list, 2, &schemes);
        extension(&mut exts, 13, &list);
    }
    extension(&mut exts, 0xff01, &[0]);

    let mut body = Vec::new();
    put_u16(&mut body, version(offer));
    body.extend_from_slice(&random);
    body.push(0); // no session id
    put_with_len(&mut body, 2, &suites);
    body.extend_from_slice(&[1, 0]); // compression: null only
    put_with_len(&mut body, 2, &exts);

    let mut handshake = vec![CLIENT_HELLO];
    put_with_len(&mut handshake, 3, &body);
    // The record layer says TLS 1.0 whatever is offered, as clients do for their first
    // record, because some servers drop a first record with a higher version.
    let mut record = vec![RECORD_HANDSHAKE];
    put_u16(&mut record, TLS10);
    put_with_len(&mut record, 2, &handshake);
    record
}

/// The server's first answer, as far as it matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// `version` is the one chosen: supported_versions' when present (TLS 1.3), else the
    /// legacy field.
    ServerHello {
        version: u16,
        suite: u16,
        hello_retry: bool,
    },
    Alert {
        description: u8,
    },
    /// Not a ServerHello or an alert, or malformed: what was wrong with it.
    Unexpected(String),
}

/// A cursor that answers `None` instead of reading past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// A vector with a length prefix of `width` bytes (1 or 2).
    fn vector(&mut self, width: usize) -> Option<&'a [u8]> {
        let len = if width == 1 {
            usize::from(self.u8()?)
        } else {
            usize::from(self.u16()?)
        };
        self.take(len)
    }
}

/// Parses the first records of an answer. `None`: more bytes are needed to tell.
fn parse_answer(buf: &[u8]) -> Option<Answer> {
    // RFC 5246 §6.2: a plaintext fragment is at most 2^14 bytes; anything longer is not TLS.
    const MAX_FRAGMENT: usize = 1 << 14;
    let mut handshake = Vec::new();
    let mut rest = Reader(buf);
    loop {
        let header = rest.take(5)?;
        let kind = header[0];
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[1] != 3 {
            return Some(Answer::Unexpected(format!(
                "not a TLS record (begins {:02x} {:02x} {:02x})",
                header[0], header[1], header[2]
            )));
        }
        if len == 0 || len > MAX_FRAGMENT {
            return Some(Answer::Unexpected(format!("record length {len}")));
        }
        let complete = rest.0.len() >= len;
        let fragment = rest.take(len.min(rest.0.len()))?;
        match kind {
            RECORD_ALERT if len < 2 => {
                return Some(Answer::Unexpected(String::from("alert record too short")));
            }
            RECORD_ALERT => {
                let mut alert = Reader(fragment);
                alert.u8()?;
                return Some(Answer::Alert {
                    description: alert.u8()?,
                });
            }
            // A ServerHello may be split over records (RFC 5246 §6.2.1); gather them.
            RECORD_HANDSHAKE => {
                handshake.extend_from_slice(fragment);
                if let Some(answer) = first_handshake_message(&handshake) {
                    return Some(answer);
                }
                if !complete {
                    return None;
                }
            }
            other => {
                return Some(Answer::Unexpected(format!(
                    "record type {other} before a ServerHello"
                )));
            }
        }
    }
}

/// The first handshake message, if all of it is there.
fn first_handshake_message(bytes: &[u8]) -> Option<Answer> {
    let mut r = Reader(bytes);
    let kind = r.u8()?;
    if kind != SERVER_HELLO {
        return Some(Answer::Unexpected(format!(
            "handshake message type {kind} instead of a ServerHello"
        )));
    }
    let len = r.u24()?;
    let body = r.take(len)?;
    Some(
        server_hello(body)
            .unwrap_or_else(|| Answer::Unexpected(String::from("malformed ServerHello"))),
    )
}

/// RFC 5246 §7.4.1.3 and RFC 8446 §4.1.3.
fn server_hello(body: &[u8]) -> Option<Answer> {
    let mut r = Reader(body);
    let legacy_version = r.u16()?;
    let random = r.take(32)?;
    let session_id = r.vector(1)?;
    if session_id.len() > 32 {
        return None;
    }
    let suite = r.u16()?;
    r.u8()?; // compression method
    let mut version = legacy_version;
    // Extensions are optional before TLS 1.3; when present they must fill the message.
    if !r.0.is_empty() {
        let mut exts = Reader(r.vector(2)?);
        if !r.0.is_empty() {
            return None;
        }
        while !exts.0.is_empty() {
            let kind = exts.u16()?;
            let data = exts.vector(2)?;
            if kind == 43 {
                // supported_versions: in a ServerHello, the one version selected.
                let mut selected = Reader(data);
                version = selected.u16()?;
                if !selected.0.is_empty() {
                    return None;
                }
            }
        }
    }
    Some(Answer::ServerHello {
        version,
        suite,
        hello_retry: random == HELLO_RETRY_RANDOM,
    })
}

fn version_name(v: u16) -> String {
    match v {
        0x0300 => String::from("SSL 3.0"),
        TLS10 => String::from("TLS 1.0"),
        TLS11 => String::from("TLS 1.1"),
        TLS12 => String::from("TLS 1.2"),
        0x0304 => String::from("TLS 1.3"),
        other => format!("version {other:04x}"),
    }
}

/// RFC 8446 §6 and RFC 5246 §7.2.
fn alert_name(description: u8) -> String {
    let name = match description {
        0 => "close_notify",
        10 => "unexpected_message",
        40 => "handshake_failure",
        47 => "illegal_parameter",
        50 => "decode_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        109 => "missing_extension",
        112 => "unrecognized_name",
        other => return format!("alert {other}"),
    };
    format!("alert {name}")
}

/// What an answer means for the offer: only a ServerHello that takes the version and one of
/// the suites offered is an acceptance; one that does not would end the handshake at a
/// conforming client, so it is no acceptance either.
fn judge(offer: LegacyOffer, answer: Answer) -> LegacyOutcome {
    match answer {
        Answer::ServerHello {
            hello_retry: true, ..
        } => LegacyOutcome::Refused(String::from("HelloRetryRequest")),
        Answer::ServerHello { version: v, .. } if v != version(offer) => {
            LegacyOutcome::Refused(format!("ServerHello for {}", version_name(v)))
        }
        Answer::ServerHello { suite, .. } => match offered(offer).find(|s| s.code == suite) {
            Some(s) => LegacyOutcome::Accepted {
                suite: s.name,
                kind: s.kind,
            },
            None => {
                LegacyOutcome::Refused(format!("ServerHello with suite {suite:04x}, not offered"))
            }
        },
        Answer::Alert { description } => LegacyOutcome::Refused(alert_name(description)),
        Answer::Unexpected(what) => LegacyOutcome::Unknown(what),
    }
}

/// Makes every offer, each on a new connection in its pacing slot.
pub(crate) async fn probe_all(
    addr: &str,
    sni: Option<&str>,
    timeout: Duration,
    pacer: &Pacer,
) -> Vec<LegacyProbe> {
    // An address is never sent as a server name (RFC 6066 §3).
    let sni = sni.filter(|name| name.parse::<IpAddr>().is_err());
    let mut probes = Vec::with_capacity(OFFERS.len());
    for offer in OFFERS {
        pacer.wait().await;
        probes.push(LegacyProbe {
            offer,
            outcome: probe(addr, sni, offer, timeout).await,
        });
    }
    probes
}

async fn probe(
    addr: &str,
    sni: Option<&str>,
    offer: LegacyOffer,
    timeout: Duration,
) -> LegacyOutcome {
    let timed_out = || LegacyOutcome::Unknown(format!("no answer within {}s", timeout.as_secs()));
    let mut tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return LegacyOutcome::Unknown(format!("cannot connect: {e}")),
        Err(_) => return timed_out(),
    };
    let _ = tcp.set_nodelay(true);
    let hello = client_hello(offer, sni, rand::random());
    match tokio::time::timeout(timeout, tcp.write_all(&hello)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return LegacyOutcome::Refused(format!("connection ended: {e}")),
        Err(_) => return timed_out(),
    }
    let read = async {
        let mut buf = Vec::with_capacity(MAX_ANSWER);
        loop {
            if buf.len() >= MAX_ANSWER {
                return LegacyOutcome::Unknown(format!(
                    "no complete ServerHello in the first {MAX_ANSWER} bytes"
                ));
            }
            let mut chunk = [0u8; 1024];
            let want = chunk.len().min(MAX_ANSWER - buf.len());
            match tcp.read(&mut chunk[..want]).await {
                Ok(0) if buf.is_empty() => {
                    return LegacyOutcome::Refused(String::from("connection closed"));
                }
                Ok(0) => {
                    return LegacyOutcome::Unknown(String::from(
                        "connection closed in the middle of a record",
                    ));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return LegacyOutcome::Refused(format!("connection ended: {e}")),
            }
            if let Some(answer) = parse_answer(&buf) {
                return judge(offer, answer);
            }
        }
    };
    // Dropping the connection here closes it: nothing more is needed from the server.
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| timed_out())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(offer: LegacyOffer, sni: Option<&str>) -> Vec<u8> {
        client_hello(offer, sni, [7; 32])
    }

    fn len16(b: &[u8]) -> usize {
        usize::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Walks a ClientHello with the same reader the answers go through, checking that every
    /// length is exactly what follows it; returns (version, suites, extension types, SNI).
    fn walk(record: &[u8]) -> (u16, Vec<u16>, Vec<u16>, Option<String>) {
        let mut r = Reader(record);
        assert_eq!(r.u8(), Some(RECORD_HANDSHAKE));
        assert_eq!(r.u16(), Some(TLS10));
        let handshake = r.vector(2).unwrap();
        assert!(r.0.is_empty());
        let mut h = Reader(handshake);
        assert_eq!(h.u8(), Some(CLIENT_HELLO));
        let len = h.u24().unwrap();
        assert_eq!(len, h.0.len());
        let version = h.u16().unwrap();
        assert_eq!(h.take(32), Some(&[7u8; 32][..]));
        assert_eq!(h.vector(1), Some(&[][..]));
        let suites = h.vector(2).unwrap();
        assert_eq!(suites.len() % 2, 0);
        let suites = suites
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(h.vector(1), Some(&[0u8][..]));
        let mut exts = Reader(h.vector(2).unwrap());
        assert!(h.0.is_empty());
        let mut kinds = Vec::new();
        let mut sni = None;
        while !exts.0.is_empty() {
            let kind = exts.u16().unwrap();
            let data = exts.vector(2).unwrap();
            match kind {
                0 => {
                    let mut list = Reader(data);
                    let mut entry = Reader(list.vector(2).unwrap());
                    assert!(list.0.is_empty());
                    assert_eq!(entry.u8(), Some(0));
                    let name = entry.vector(2).unwrap();
                    assert!(entry.0.is_empty());
                    sni = Some(String::from_utf8(name.to_vec()).unwrap());
                }
                10 | 13 => {
                    assert_eq!(len16(data), data.len() - 2);
                    assert_eq!(data.len() % 2, 0);
                }
                _ => {}
            }
            kinds.push(kind);
        }
        (version, suites, kinds, sni)
    }

    #[test]
    fn client_hellos_are_consistent() {
        for offer in OFFERS {
            let (v, suites, kinds, sni) = walk(&hello(offer, Some("pacs.example")));
            assert_eq!(v, version(offer));
            assert!(!suites.is_empty());
            assert_eq!(sni.as_deref(), Some("pacs.example"));
            assert!(kinds.contains(&10) && kinds.contains(&11) && kinds.contains(&0xff01));
            // signature_algorithms only where TLS 1.2 defines it.
            assert_eq!(kinds.contains(&13), v == TLS12, "{offer:?}");
            // No suite twice.
            let mut sorted = suites.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), suites.len());
        }
        let (_, suites, kinds, sni) = walk(&hello(LegacyOffer::Tls12Cbc, None));
        assert_eq!(sni, None);
        assert!(!kinds.contains(&0));
        assert!(suites.contains(&0xc013) && !suites.contains(&0x002f));
        let (_, suites, _, _) = walk(&hello(LegacyOffer::Tls12Broken, None));
        assert!(suites.contains(&0x0005) && !suites.contains(&0xc013));
        let (_, suites, _, _) = walk(&hello(LegacyOffer::Tls10, None));
        assert_eq!(suites.len(), SUITES.len());
    }

    /// A ServerHello record: version, suite, optional extensions block, optional random.
    fn server_hello_record(
        legacy_version: u16,
        suite: u16,
        exts: Option<&[u8]>,
        random: [u8; 32],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        put_u16(&mut body, legacy_version);
        body.extend_from_slice(&random);
        put_with_len(&mut body, 1, &[9; 32]);
        put_u16(&mut body, suite);
        body.push(0);
        if let Some(exts) = exts {
            put_with_len(&mut body, 2, exts);
        }
        let mut handshake = vec![SERVER_HELLO];
        put_with_len(&mut handshake, 3, &body);
        let mut record = vec![RECORD_HANDSHAKE];
        put_u16(&mut record, legacy_version.min(TLS12));
        put_with_len(&mut record, 2, &handshake);
        record
    }

    #[test]
    fn server_hellos_parse() {
        let tls10 = server_hello_record(TLS10, 0x002f, None, [1; 32]);
        assert_eq!(
            parse_answer(&tls10),
            Some(Answer::ServerHello {
                version: TLS10,
                suite: 0x002f,
                hello_retry: false
            })
        );
        assert_eq!(
            judge(LegacyOffer::Tls10, parse_answer(&tls10).unwrap()),
            LegacyOutcome::Accepted {
                suite: "TLS_RSA_WITH_AES_128_CBC_SHA",
                kind: SuiteKind::StaticRsa { aead: false }
            }
        );
        // The same ServerHello is no acceptance of TLS 1.1 or of a suite not offered.
        assert!(matches!(
            judge(LegacyOffer::Tls11, parse_answer(&tls10).unwrap()),
            LegacyOutcome::Refused(why) if why == "ServerHello for TLS 1.0"
        ));
        let tls12 = server_hello_record(TLS12, 0x002f, Some(&[0xff, 0x01, 0, 1, 0]), [1; 32]);
        assert!(matches!(
            judge(LegacyOffer::Tls12Cbc, parse_answer(&tls12).unwrap()),
            LegacyOutcome::Refused(why) if why.contains("not offered")
        ));
        // Followed by the certificate in the same record: only the ServerHello is read.
        let mut with_more = tls12.clone();
        with_more.extend_from_slice(&[11, 0, 0, 3, 0, 0, 0]);
        let len = len16(&with_more[3..5]) + 7;
        with_more[3..5].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        assert_eq!(parse_answer(&with_more), parse_answer(&tls12));
    }

    #[test]
    fn tls13_server_hellos_and_retries_parse() {
        // supported_versions selecting TLS 1.3, key_share for x25519.
        let mut exts = vec![0, 43, 0, 2, 3, 4, 0, 51, 0, 36, 0, 0x1d, 0, 32];
        exts.extend_from_slice(&[5; 32]);
        let tls13 = server_hello_record(TLS12, 0x1301, Some(&exts), [1; 32]);
        let answer = parse_answer(&tls13).unwrap();
        assert_eq!(
            answer,
            Answer::ServerHello {
                version: 0x0304,
                suite: 0x1301,
                hello_retry: false
            }
        );
        assert!(matches!(
            judge(LegacyOffer::Tls12Cbc, answer),
            LegacyOutcome::Refused(why) if why == "ServerHello for TLS 1.3"
        ));
        let retry = server_hello_record(
            TLS12,
            0x1301,
            Some(&[0, 43, 0, 2, 3, 4, 0, 51, 0, 2, 0, 0x17]),
            HELLO_RETRY_RANDOM,
        );
        let answer = parse_answer(&retry).unwrap();
        assert!(matches!(
            answer,
            Answer::ServerHello {
                hello_retry: true,
                ..
            }
        ));
        assert_eq!(
            judge(LegacyOffer::Tls12Broken, answer),
            LegacyOutcome::Refused(String::from("HelloRetryRequest"))
        );
    }

    #[test]
    fn alerts_parse() {
        let alert = [RECORD_ALERT, 3, 3, 0, 2, 2, 70];
        assert_eq!(
            parse_answer(&alert),
            Some(Answer::Alert { description: 70 })
        );
        assert_eq!(
            judge(LegacyOffer::Tls10, parse_answer(&alert).unwrap()),
            LegacyOutcome::Refused(String::from("alert protocol_version"))
        );
        assert_eq!(alert_name(200), "alert 200");
        assert_eq!(parse_answer(&alert[..6]), None);
        assert!(matches!(
            parse_answer(&[RECORD_ALERT, 3, 1, 0, 1, 2]),
            Some(Answer::Unexpected(_))
        ));
    }

    #[test]
    fn split_records_are_gathered() {
        let whole = server_hello_record(TLS12, 0xc013, None, [1; 32]);
        let handshake = &whole[5..];
        let mut split = Vec::new();
        for part in [&handshake[..10], &handshake[10..]] {
            split.extend_from_slice(&[RECORD_HANDSHAKE, 3, 3]);
            put_with_len(&mut split, 2, part);
        }
        assert_eq!(parse_answer(&split), parse_answer(&whole));
        assert_eq!(parse_answer(&split[..20]), None);
    }

    #[test]
    fn truncated_answers_ask_for_more_and_never_panic() {
        let whole = server_hello_record(TLS12, 0xc013, Some(&[0, 43, 0, 2, 3, 3]), [1; 32]);
        assert!(parse_answer(&whole).is_some());
        for n in 0..whole.len() {
            assert_eq!(parse_answer(&whole[..n]), None, "{n} bytes");
        }
    }

    #[test]
    fn garbage_is_unexpected_and_never_panics() {
        assert!(matches!(
            parse_answer(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            Some(Answer::Unexpected(_))
        ));
        // An A-ASSOCIATE-RJ from a plain DICOM port.
        assert!(matches!(
            parse_answer(&[0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x01, 0x01]),
            Some(Answer::Unexpected(_))
        ));
        assert!(matches!(
            parse_answer(&[23, 3, 3, 0, 1, 0]),
            Some(Answer::Unexpected(_))
        ));
        assert!(matches!(
            parse_answer(&[22, 3, 3, 0x48, 0x01]),
            Some(Answer::Unexpected(_))
        ));
        // Lengths inside a complete ServerHello that overrun it, or a session id too long.
        let mut long_session = vec![3, 3];
        long_session.extend_from_slice(&[0; 32]);
        long_session.push(33);
        long_session.extend_from_slice(&[0; 33]);
        long_session.extend_from_slice(&[0, 0x2f, 0]);
        let mut overrun_exts = vec![3, 3];
        overrun_exts.extend_from_slice(&[0; 33]);
        overrun_exts.extend_from_slice(&[0, 0x2f, 0, 0, 10, 0, 43]);
        for body in [vec![3, 3, 0], long_session, overrun_exts] {
            let mut message = vec![SERVER_HELLO];
            put_with_len(&mut message, 3, &body);
            let mut record = vec![RECORD_HANDSHAKE, 3, 3];
            put_with_len(&mut record, 2, &message);
            assert_eq!(
                parse_answer(&record),
                Some(Answer::Unexpected(String::from("malformed ServerHello"))),
                "{body:?}"
            );
        }
        // A message longer than the record, and no record behind it yet: wait for more.
        assert_eq!(parse_answer(&[22, 3, 3, 0, 6, 2, 0, 0, 38, 3, 3]), None);
        // Deterministic pseudo-random bytes, and every truncation of them.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let len = usize::try_from(state % 300).unwrap();
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state.to_le_bytes()[0]);
            }
            // Half of them look like a handshake record, to get past the first checks.
            if state % 2 == 0 && bytes.len() > 5 {
                bytes[..3].copy_from_slice(&[RECORD_HANDSHAKE, 3, 3]);
                bytes[5] = SERVER_HELLO;
            }
            let _ = parse_answer(&bytes);
        }
    }
}
