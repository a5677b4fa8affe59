//! PDU framing over any async byte stream, with strict limits.
//!
//! dicom-ul parses and writes the PDU bodies; this module owns the framing so that a PDU's
//! declared length is checked against our limit before a single byte of its body is buffered
//! (a peer declaring a 4 GB PDU costs us six bytes), and so that P-DATA is fragmented by us
//! without dicom-ul's blocking writer.

use std::io;

use bytes::BytesMut;
use dicom_ul::pdu::{AbortRQServiceProviderReason, AbortRQSource, PDataValueType, Pdu};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// PDU type 04H (P-DATA-TF).
const P_DATA_TF: u8 = 0x04;
/// Bytes of a PDU header: type, reserved, 32-bit length.
pub const PDU_HEADER: usize = 6;
/// Bytes of a PDV item header inside P-DATA: 32-bit length, context id, control header.
pub const PDV_HEADER: usize = 6;
/// Limit for the association-control PDUs (RQ/AC/RJ/release/abort), which carry no data.
pub const MAX_CONTROL_PDU: u32 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("peer closed the connection")]
    Closed,
    #[error("PDU of {length} bytes exceeds the limit of {limit}")]
    TooLarge { length: u32, limit: u32 },
    #[error("unrecognised PDU type {0:#04x}")]
    UnknownType(u8),
    #[error("malformed PDU: {0}")]
    Malformed(String),
}

impl PduError {
    /// The A-ABORT reason that tells the peer what was wrong with what it sent.
    pub fn abort_source(&self) -> AbortRQSource {
        let reason = match self {
            PduError::UnknownType(_) => AbortRQServiceProviderReason::UnrecognizedPdu,
            PduError::TooLarge { .. } | PduError::Malformed(_) => {
                AbortRQServiceProviderReason::InvalidPduParameter
            }
            PduError::Io(_) | PduError::Closed => AbortRQServiceProviderReason::ReasonNotSpecified,
        };
        AbortRQSource::ServiceProvider(reason)
    }
}

/// One presentation data value as received.
#[derive(Debug)]
pub struct Pdv {
    pub context_id: u8,
    pub is_command: bool,
    pub is_last: bool,
    pub data: Vec<u8>,
}

/// A PDU as Ward reads it: P-DATA split into PDVs by our own parser (it is the hot path and
/// must not copy more than once), everything else through dicom-ul.
#[derive(Debug)]
pub enum Incoming {
    PData(Vec<Pdv>),
    Other(Pdu),
}

/// Reads one PDU whose length may not exceed `pdata_limit` for P-DATA-TF and
/// [`MAX_CONTROL_PDU`] for any other type. Reads exactly the PDU's bytes and nothing beyond, so
/// it can be used before handing the stream to something else; it is not cancel-safe (see
/// [`PduBuffer`] for that).
pub async fn read_pdu<R: AsyncRead + Unpin>(
    reader: &mut R,
    pdata_limit: u32,
) -> Result<Incoming, PduError> {
    let mut header = [0u8; PDU_HEADER];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(PduError::Closed),
        Err(e) => return Err(e.into()),
    }
    let length = check_header(&header, pdata_limit)?;
    let mut whole = vec![0u8; PDU_HEADER + length];
    whole[..PDU_HEADER].copy_from_slice(&header);
    reader
        .read_exact(&mut whole[PDU_HEADER..])
        .await
        .map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                PduError::Malformed("PDU ends before its declared length".into())
            } else {
                PduError::Io(e)
            }
        })?;
    parse_pdu(&whole)
}

/// Checks a PDU header against the limits and returns the body length.
fn check_header(header: &[u8; PDU_HEADER], pdata_limit: u32) -> Result<usize, PduError> {
    let pdu_type = header[0];
    let length = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
    if !(0x01..=0x07).contains(&pdu_type) {
        return Err(PduError::UnknownType(pdu_type));
    }
    let limit = if pdu_type == P_DATA_TF {
        pdata_limit
    } else {
        MAX_CONTROL_PDU
    };
    if length > limit {
        return Err(PduError::TooLarge { length, limit });
    }
    usize::try_from(length).map_err(|_| PduError::TooLarge { length, limit })
}

/// Parses a whole PDU (header and body) whose header has passed [`check_header`].
fn parse_pdu(whole: &[u8]) -> Result<Incoming, PduError> {
    if whole.first() == Some(&P_DATA_TF) {
        return parse_pdata(whole.get(PDU_HEADER..).unwrap_or_default()).map(Incoming::PData);
    }
    match dicom_ul::pdu::read_pdu(whole, dicom_ul::pdu::MAXIMUM_PDU_SIZE, false) {
        Ok(Some(pdu)) => Ok(Incoming::Other(pdu)),
        Ok(None) => Err(PduError::Malformed("incomplete PDU".into())),
        Err(e) => Err(PduError::Malformed(e.to_string())),
    }
}

/// A cancel-safe PDU reader for an established association: the bytes read so far live in the
/// buffer, so a read abandoned half-way (a timeout, or a poll that found nothing complete)
/// loses nothing. The buffer never holds more than one PDU beyond what the peer sent early.
#[derive(Debug, Default)]
pub struct PduBuffer {
    buf: BytesMut,
}

impl PduBuffer {
    /// Reads the next PDU, with the limits of [`read_pdu`]. Cancel-safe.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        pdata_limit: u32,
    ) -> Result<Incoming, PduError> {
        loop {
            let wanted = match self.buf.get(..PDU_HEADER) {
                Some(header) => {
                    let mut h = [0u8; PDU_HEADER];
                    h.copy_from_slice(header);
                    let whole = PDU_HEADER + check_header(&h, pdata_limit)?;
                    if self.buf.len() >= whole {
                        let pdu = self.buf.split_to(whole);
                        return parse_pdu(&pdu);
                    }
                    whole
                }
                None => PDU_HEADER,
            };
            self.buf.reserve(wanted - self.buf.len());
            if reader.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() {
                    PduError::Closed
                } else {
                    PduError::Malformed("connection closed inside a PDU".into())
                });
            }
        }
    }
}

/// Splits a P-DATA-TF body into its PDV items (PS3.8 §9.3.5).
fn parse_pdata(mut body: &[u8]) -> Result<Vec<Pdv>, PduError> {
    let mut pdvs = Vec::new();
    if body.is_empty() {
        return Err(PduError::Malformed("P-DATA-TF without a PDV".into()));
    }
    while !body.is_empty() {
        let (len_bytes, rest) = body
            .split_at_checked(4)
            .ok_or_else(|| PduError::Malformed("truncated PDV length".into()))?;
        let item_len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let item_len = usize::try_from(item_len)
            .map_err(|_| PduError::Malformed("PDV length overflows".into()))?;
        // The item holds at least the context id and the message control header.
        if item_len < 2 {
            return Err(PduError::Malformed("PDV shorter than its header".into()));
        }
        let (item, rest) = rest
            .split_at_checked(item_len)
            .ok_or_else(|| PduError::Malformed("PDV runs past the end of its PDU".into()))?;
        let control = item[1];
        if control & 0xFC != 0 {
            return Err(PduError::Malformed(
                "reserved bits set in PDV header".into(),
            ));
        }
        pdvs.push(Pdv {
            context_id: item[0],
            is_command: control & 0x01 != 0,
            is_last: control & 0x02 != 0,
            data: item[2..].to_vec(),
        });
        body = rest;
    }
    Ok(pdvs)
}

/// Writes a non-data PDU through dicom-ul's encoder.
pub async fn write_pdu<W: AsyncWrite + Unpin>(writer: &mut W, pdu: &Pdu) -> Result<(), PduError> {
    let mut buf = Vec::new();
    dicom_ul::pdu::write_pdu(&mut buf, pdu).map_err(|e| PduError::Malformed(e.to_string()))?;
    writer.write_all(&buf).await?;
    writer.flush().await?;
    Ok(())
}

/// Sends an A-ABORT, ignoring errors: the connection is being dropped either way.
pub async fn send_abort<W: AsyncWrite + Unpin>(writer: &mut W, source: AbortRQSource) {
    let _ = write_pdu(writer, &Pdu::AbortRQ { source }).await;
}

/// The PDU and PDV headers of a P-DATA-TF PDU holding one PDV of `data_len` bytes.
fn pdv_header(
    context_id: u8,
    kind: &PDataValueType,
    is_last: bool,
    data_len: usize,
) -> Result<[u8; PDU_HEADER + PDV_HEADER], PduError> {
    let item_len =
        u32::try_from(data_len + 2).map_err(|_| PduError::Malformed("PDV too large".into()))?;
    let pdu_len = item_len
        .checked_add(4)
        .ok_or_else(|| PduError::Malformed("PDV too large".into()))?;
    let mut header = [0u8; PDU_HEADER + PDV_HEADER];
    header[0] = P_DATA_TF;
    header[2..6].copy_from_slice(&pdu_len.to_be_bytes());
    header[6..10].copy_from_slice(&item_len.to_be_bytes());
    header[10] = context_id;
    header[11] = u8::from(matches!(kind, PDataValueType::Command)) | (u8::from(is_last) << 1);
    Ok(header)
}

/// Appends one P-DATA-TF PDU holding one PDV to `out`.
pub fn encode_pdv(
    out: &mut Vec<u8>,
    context_id: u8,
    kind: &PDataValueType,
    is_last: bool,
    data: &[u8],
) -> Result<(), PduError> {
    out.extend_from_slice(&pdv_header(context_id, kind, is_last, data.len())?);
    out.extend_from_slice(data);
    Ok(())
}

/// Writes one P-DATA-TF PDU holding one PDV. Small payloads go out in one write with their
/// headers (a response is a few hundred bytes: two writes would be two segments); large ones
/// are not copied.
pub async fn write_pdv<W: AsyncWrite + Unpin>(
    writer: &mut W,
    context_id: u8,
    kind: PDataValueType,
    is_last: bool,
    data: &[u8],
) -> Result<(), PduError> {
    if data.len() <= COALESCE_LIMIT {
        let mut buf = Vec::with_capacity(PDU_HEADER + PDV_HEADER + data.len());
        encode_pdv(&mut buf, context_id, &kind, is_last, data)?;
        writer.write_all(&buf).await?;
    } else {
        writer
            .write_all(&pdv_header(context_id, &kind, is_last, data.len())?)
            .await?;
        writer.write_all(data).await?;
    }
    Ok(())
}

/// Payloads up to this size are copied behind their headers and written once.
pub const COALESCE_LIMIT: usize = 64 * 1024;

/// Appends a command set or a data set as one or more PDVs of at most `max_payload` bytes.
pub fn encode_fragments(
    out: &mut Vec<u8>,
    context_id: u8,
    kind: PDataValueType,
    bytes: &[u8],
    max_payload: usize,
) -> Result<(), PduError> {
    if bytes.is_empty() {
        return encode_pdv(out, context_id, &kind, true, &[]);
    }
    let mut chunks = bytes.chunks(max_payload).peekable();
    while let Some(chunk) = chunks.next() {
        encode_pdv(out, context_id, &kind, chunks.peek().is_none(), chunk)?;
    }
    Ok(())
}

/// Largest PDV payload that fits in a PDU the peer accepts. `peer_max` is the peer's maximum
/// length received (0 means unlimited); `fallback` bounds our own buffers in that case.
pub fn max_pdv_payload(peer_max: u32, fallback: u32) -> usize {
    let max = if peer_max == 0 { fallback } else { peer_max };
    // The PDU length counts the PDV item header (6 bytes) but not the PDU header.
    (max as usize).saturating_sub(PDV_HEADER).max(1)
}

/// Sends a command set or an in-memory data set as one or more PDVs, in one write.
pub async fn write_fragments<W: AsyncWrite + Unpin>(
    writer: &mut W,
    context_id: u8,
    kind: PDataValueType,
    bytes: &[u8],
    max_payload: usize,
) -> Result<(), PduError> {
    let mut buf = Vec::with_capacity(bytes.len() + 2 * (PDU_HEADER + PDV_HEADER));
    encode_fragments(&mut buf, context_id, kind, bytes, max_payload)?;
    writer.write_all(&buf).await?;
    writer.flush().await?;
    Ok(())
}

/// Sends `len` bytes from `reader` as data PDVs of at most `max_payload` bytes, each write
/// bounded by `write_timeout` (an `io::ErrorKind::TimedOut` error when it passes). Memory use is
/// one payload whatever `len` is.
pub async fn write_stream<W, R>(
    writer: &mut W,
    context_id: u8,
    mut reader: R,
    len: u64,
    max_payload: usize,
    write_timeout: std::time::Duration,
) -> Result<(), PduError>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    let mut buf = vec![
        0u8;
        max_payload
            .min(usize::try_from(len).unwrap_or(usize::MAX))
            .max(1)
    ];
    let mut remaining = len;
    loop {
        let want = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        reader.read_exact(&mut buf[..want]).await?;
        remaining -= want as u64;
        let last = remaining == 0;
        let write = write_pdv(writer, context_id, PDataValueType::Data, last, &buf[..want]);
        tokio::time::timeout(write_timeout, write)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        if last {
            break;
        }
    }
    tokio::time::timeout(write_timeout, writer.flush())
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pdv_round_trip_and_limits() {
        let mut buf = Vec::new();
        write_pdv(&mut buf, 3, PDataValueType::Data, true, b"hello!")
            .await
            .unwrap();
        let mut r = &buf[..];
        match read_pdu(&mut r, 1024).await.unwrap() {
            Incoming::PData(pdvs) => {
                assert_eq!(pdvs.len(), 1);
                assert_eq!(pdvs[0].context_id, 3);
                assert!(!pdvs[0].is_command && pdvs[0].is_last);
                assert_eq!(pdvs[0].data, b"hello!");
            }
            other => panic!("{other:?}"),
        }
        let mut r = &buf[..];
        assert!(matches!(
            read_pdu(&mut r, 8).await,
            Err(PduError::TooLarge {
                length: 12,
                limit: 8
            })
        ));
    }

    #[tokio::test]
    async fn four_gigabyte_pdu_is_refused_from_its_header() {
        let bytes = [0x04, 0, 0xff, 0xff, 0xff, 0xff];
        let mut r = &bytes[..];
        assert!(matches!(
            read_pdu(&mut r, 1 << 20).await,
            Err(PduError::TooLarge { .. })
        ));
        let control = [0x01, 0, 0xff, 0xff, 0xff, 0xff];
        let mut r = &control[..];
        assert!(matches!(
            read_pdu(&mut r, 1 << 20).await,
            Err(PduError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn malformed_pdata_is_refused() {
        // PDV item declaring one byte (shorter than its own header)
        let bytes = [0x04, 0, 0, 0, 0, 5, 0, 0, 0, 1, 1];
        let mut r = &bytes[..];
        assert!(matches!(
            read_pdu(&mut r, 1024).await,
            Err(PduError::Malformed(_))
        ));
        // PDV running past its PDU
        let bytes = [0x04, 0, 0, 0, 0, 6, 0, 0, 0, 9, 1, 3];
        let mut r = &bytes[..];
        assert!(matches!(
            read_pdu(&mut r, 1024).await,
            Err(PduError::Malformed(_))
        ));
        // unknown PDU type
        let bytes = [0x09, 0, 0, 0, 0, 0];
        let mut r = &bytes[..];
        assert!(matches!(
            read_pdu(&mut r, 1024).await,
            Err(PduError::UnknownType(9))
        ));
        // body shorter than declared
        let bytes = [0x04, 0, 0, 0, 0, 10, 0];
        let mut r = &bytes[..];
        assert!(matches!(
            read_pdu(&mut r, 1024).await,
            Err(PduError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn control_pdus_go_through_dicom_ul() {
        let mut buf = Vec::new();
        write_pdu(&mut buf, &Pdu::ReleaseRQ).await.unwrap();
        let mut r = &buf[..];
        assert!(matches!(
            read_pdu(&mut r, 1024).await.unwrap(),
            Incoming::Other(Pdu::ReleaseRQ)
        ));
    }

    #[test]
    fn pdv_payload_sizes() {
        assert_eq!(max_pdv_payload(16384, 1 << 20), 16378);
        assert_eq!(max_pdv_payload(0, 65536), 65530);
    }
}
