#!/usr/bin/env python3
"""Writes the fuzz seeds that come from outside Ward: pydicom's test files and what pydicom and
pynetdicom encode (identifiers, command sets, PDUs). Ward's own encoders write the rest (see
fuzz/src/seeds.rs, run by scripts/fuzz --seed).

Each seed starts with its target's configuration byte, as the targets in fuzz_targets/ read it.

    python3 fuzz/seeds.py OUT_DIR      # writes OUT_DIR/<target>/<name>
"""

import io
import os
import struct
import sys
import zlib

import pydicom
import pydicom.data
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
RLE = "1.2.840.10008.1.2.5"

# The tables of fuzz/src/lib.rs (mod ts): a seed's configuration byte is an index into them.
DATASET = [IMPLICIT, EXPLICIT, BIG, DEFLATED, JPEG_BASELINE, RLE]
IDENTIFIER = [IMPLICIT, EXPLICIT, BIG, DEFLATED]
PIXELS = [RLE, JPEG_BASELINE, "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
          "1.2.840.10008.1.2.4.70"]

# Bigger inputs mostly slow the fuzzer down; the targets' -max_len is the same.
MAX_SEED = 64 * 1024


def write(out, target, name, config, body):
    data = bytes([config]) + body
    if len(data) > MAX_SEED:
        return 0
    path = os.path.join(out, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)
    return 1


def split_part10(raw):
    """(transfer syntax, data set bytes) of a Part 10 file, walking the explicit VR little endian
    meta group itself rather than trusting its group length; None if it is not Part 10."""
    if len(raw) < 132 or raw[128:132] != b"DICM":
        return None
    pos, ts = 132, None
    while pos + 8 <= len(raw):
        group, element = struct.unpack_from("<HH", raw, pos)
        if group != 2:
            break
        vr = raw[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            (length,) = struct.unpack_from("<I", raw, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", raw, pos + 6)
            start = pos + 8
        if element == 0x0010:
            ts = raw[start:start + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos = start + length
    return (ts, raw[pos:]) if ts else None


def test_files(out):
    """pydicom's test files: every data set for `dataset`, the compressed ones for `pixels`."""
    folder = os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm"))
    n = 0
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            split = split_part10(f.read())
        if split is None:
            continue
        ts, body = split
        stem = "pydicom-" + name.rsplit(".", 1)[0]
        if ts in DATASET:
            n += write(out, "dataset", stem, DATASET.index(ts), body)
        elif ts.startswith("1.2.840.10008.1.2.4."):
            # Any other encapsulated syntax has JPEG baseline's byte layout.
            n += write(out, "dataset", stem, DATASET.index(JPEG_BASELINE), body)
        if ts in PIXELS:
            # Bit 3: explicit VR little endian output.
            n += write(out, "pixels", stem, PIXELS.index(ts) | 0x08, body)
    return n


# The boundary of the stow target's requests (fuzz/src/seeds.rs, STOW_BOUNDARY).
STOW_BOUNDARY = b"WardFuzzBoundary"


def multipart(files, closed=True):
    """A STOW-RS body with one application/dicom part per file."""
    body = b""
    for f in files:
        body += b"--" + STOW_BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\n" + f + b"\r\n"
    if closed:
        body += b"--" + STOW_BOUNDARY + b"--\r\n"
    return body


def stow(out):
    """pydicom's test files as STOW-RS bodies, as they are on disk (a sender's own preamble and
    meta group): one part each, the small ones together, and cut short or left unclosed."""
    folder = os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm"))
    files = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.path.getsize(path) < 40 * 1024:
            with open(path, "rb") as f:
                raw = f.read()
            if raw[128:132] == b"DICM":
                files.append((name.rsplit(".", 1)[0], raw))
    n = 0
    for stem, raw in files:
        n += write(out, "stow", "pydicom-" + stem, 0, multipart([raw]))
    small = [raw for _, raw in files if len(raw) < 8 * 1024][:4]
    if small:
        n += write(out, "stow", "pydicom-several", 0, multipart(small))
        # Bit 0: posted to a study's URL, which none of these belong to; bits 1-3: chunked.
        n += write(out, "stow", "pydicom-several-study-chunked", 0x01 | 0x06, multipart(small))
        whole = multipart(small[:1])
        n += write(out, "stow", "pydicom-cut", 0, whole[: len(whole) // 2])
        n += write(out, "stow", "pydicom-unclosed", 0, multipart(small[:2], closed=False))
    return n


def encode(ds, ts):
    """A data set in transfer syntax `ts`, as pydicom writes it."""
    if ts == DEFLATED:
        raw = encode(ds, EXPLICIT)
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        return deflater.compress(raw) + deflater.flush()
    fp = DicomBytesIO()
    fp.is_little_endian = ts != BIG
    fp.is_implicit_VR = ts == IMPLICIT
    write_dataset(fp, ds)
    return fp.getvalue()


def identifiers():
    """C-FIND identifiers as viewers send them: (name, patient root?, data set)."""
    study = Dataset()
    study.SpecificCharacterSet = "ISO_IR 100"
    study.QueryRetrieveLevel = "STUDY"
    study.PatientName = "DOE^J*"
    study.PatientID = ""
    study.StudyDate = "20200101-20241231"
    study.StudyTime = "0800-"
    study.ModalitiesInStudy = "CT\\MR"
    study.StudyInstanceUID = ""
    study.AccessionNumber = "A?12*"
    study.NumberOfStudyRelatedInstances = ""
    code = Dataset()
    code.CodeValue = "T-1234"
    code.CodingSchemeDesignator = ""
    study.ProcedureCodeSequence = [code]

    series = Dataset()
    series.QueryRetrieveLevel = "SERIES"
    series.StudyInstanceUID = "1.2.3.4"
    series.SeriesInstanceUID = "1.2.3.4.1\\1.2.3.4.2"
    series.Modality = "CT"
    series.SeriesNumber = ""

    image = Dataset()
    image.QueryRetrieveLevel = "IMAGE"
    image.PatientID = "PAT-001"
    image.StudyInstanceUID = "1.2.3.4"
    image.SeriesInstanceUID = "1.2.3.4.1"
    image.SOPInstanceUID = ""
    image.AcquisitionDateTime = "20200101120000.5+0100-"

    patient = Dataset()
    patient.SpecificCharacterSet = "ISO_IR 192"
    patient.QueryRetrieveLevel = "PATIENT"
    patient.PatientName = "Müller^Jürgen"
    patient.PatientID = "*"
    patient.PatientBirthDate = "-19700101"
    return [("study", False, study), ("series", False, series),
            ("image", True, image), ("patient", True, patient)]


def query(out):
    n = 0
    for name, patient_root, ds in identifiers():
        for i, ts in enumerate(IDENTIFIER):
            config = i | (0x04 if patient_root else 0)
            n += write(out, "identifier", f"pydicom-{name}-{i}", config, encode(ds, ts))
    return n


def network(out):
    """Command sets and PDUs as pynetdicom writes them."""
    from pynetdicom import dimse_messages, dimse_primitives, pdu, pdu_primitives
    from pynetdicom.dsutils import encode as encode_ds

    n = 0
    rqs = []
    echo = dimse_primitives.C_ECHO()
    echo.MessageID = 1
    echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
    rqs.append(("echo", dimse_messages.C_ECHO_RQ(), echo, None))
    store = dimse_primitives.C_STORE()
    store.MessageID = 7
    store.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    store.AffectedSOPInstanceUID = "1.2.3.4.5"
    store.Priority = 2
    store.MoveOriginatorApplicationEntityTitle = "MOVESCU"
    store.MoveOriginatorMessageID = 3
    store.DataSet = io.BytesIO(encode(identifiers()[1][2], IMPLICIT))
    rqs.append(("store", dimse_messages.C_STORE_RQ(), store, None))
    find = dimse_primitives.C_FIND()
    find.MessageID = 2
    find.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    find.Priority = 0
    find.Identifier = io.BytesIO(encode(identifiers()[0][2], IMPLICIT))
    rqs.append(("find", dimse_messages.C_FIND_RQ(), find, None))
    move = dimse_primitives.C_MOVE()
    move.MessageID = 5
    move.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
    move.Priority = 0
    move.MoveDestination = "STORESCP"
    move.Identifier = io.BytesIO(encode(identifiers()[1][2], IMPLICIT))
    rqs.append(("move", dimse_messages.C_MOVE_RQ(), move, None))

    pdata = []
    for name, message, primitive, _ in rqs:
        message.primitive_to_message(primitive)
        command = encode_ds(message.command_set, True, True)
        n += write(out, "command", f"pynetdicom-{name}", 0, command)
        stream = b""
        for p in message.encode_msg(1, 512):
            tf = pdu.P_DATA_TF()
            tf.from_primitive(p)
            stream += tf.encode()
        pdata.append(stream)
        n += write(out, "pdu", f"pynetdicom-{name}", 0x0F, stream)

    assoc = pdu_primitives.A_ASSOCIATE()
    assoc.application_context_name = "1.2.840.10008.3.1.1.1"
    assoc.calling_ae_title = "STORESCU"
    assoc.called_ae_title = "WARD"
    from pynetdicom.presentation import build_context
    ctx = build_context("1.2.840.10008.5.1.4.1.1.2", [EXPLICIT, IMPLICIT, JPEG_BASELINE])
    ctx.context_id = 1
    assoc.presentation_context_definition_list = [ctx]
    max_len = pdu_primitives.MaximumLengthNotification()
    max_len.maximum_length_received = 16382
    impl = pdu_primitives.ImplementationClassUIDNotification()
    impl.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0.4"
    ident = pdu_primitives.UserIdentityNegotiation()
    ident.user_identity_type = 2
    ident.primary_field = b"alice"
    ident.secondary_field = b"secret"
    role = pdu_primitives.SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2"
    role.scu_role = False
    role.scp_role = True
    assoc.user_information = [max_len, impl, ident, role]
    rq = pdu.A_ASSOCIATE_RQ()
    rq.from_primitive(assoc)
    rq_bytes = rq.encode()
    n += write(out, "pdu", "pynetdicom-associate-rq", 0x03, rq_bytes)
    release = pdu.A_RELEASE_RQ().encode()
    n += write(out, "pdu", "pynetdicom-session", 0x2F, rq_bytes + b"".join(pdata) + release)
    return n


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds")
    total = test_files(out) + query(out) + stow(out)
    try:
        total += network(out)
    except Exception as e:  # a pynetdicom API change must not stop the other seeds
        print(f"seeds.py: pynetdicom seeds skipped: {e!r}", file=sys.stderr)
    print(f"seeds.py: {total} seeds from pydicom/pynetdicom in {out}")


if __name__ == "__main__":
    main()
