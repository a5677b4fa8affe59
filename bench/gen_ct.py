#!/usr/bin/env python3
"""Synthetic CT corpus for Ward's benchmarks.

Default mode writes N single-frame CT Image Storage objects (512x512, 16 bits
allocated, 12 stored, explicit VR little endian) belonging to one patient, one
study and one series:

    bench/gen_ct.py OUT_DIR [--count 500] [--seed 1]

Large-object mode writes COUNT multi-frame objects of about SIZE_MB megabytes
(MiB) each, streaming the pixel data to disk frame by frame, so memory use
stays at a few MB whatever the size:

    bench/gen_ct.py OUT_DIR --size-mb 1024 --count 1 [--sop sc|ct]

Pixel data is a noisy elliptical phantom (body, lungs, spine, table) that
varies along the series. It is generated with plain integer arithmetic (no
numpy), seeded, so the pixels are reproducible; UIDs are fresh on every run
(2.25 + a random 128-bit integer).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import random
import struct
import sys
import uuid
from pathlib import Path

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian
except ImportError:  # pragma: no cover - reported to the user
    sys.exit("gen_ct.py needs pydicom: python3 -m pip install pydicom")

ROWS = 512
COLS = 512
FRAME_BYTES = ROWS * COLS * 2

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MF_WORD_SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7.3"

# Stable for this generator, so the files say which tool made them.
IMPLEMENTATION_CLASS_UID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "ward:bench:gen_ct").int)
IMPLEMENTATION_VERSION = "WARD_GEN_CT_1"

# Stored values: HU = value - 1024 (RescaleIntercept -1024). Noise adds 0..63.
NOISE_MASK_LANE = 0x003F
NOISE_MEAN = 32
AIR = 0
LUNG = 224  # about -800 HU
FAT = 924  # about -100 HU
SOFT = 1064  # about +40 HU
BONE = 1900  # about +880 HU
TABLE = 1300

_NOISE_MASK = int.from_bytes(NOISE_MASK_LANE.to_bytes(2, "little") * (ROWS * COLS), "little")


def new_uid() -> str:
    return "2.25." + str(uuid.uuid4().int)


def _lane(value: int) -> bytes:
    value = max(0, min(4095 - NOISE_MASK_LANE, value))
    return value.to_bytes(2, "little")


def _ellipse_span(y: float, cy: float, cx: float, ry: float, rx: float) -> tuple[int, int] | None:
    d = (y - cy) / ry
    if abs(d) >= 1.0:
        return None
    half = rx * math.sqrt(1.0 - d * d)
    x0 = max(0, int(round(cx - half)))
    x1 = min(COLS, int(round(cx + half)))
    if x1 <= x0:
        return None
    return x0, x1


def phantom(z: float) -> bytes:
    """Noise-free phantom slice at relative position z in [0, 1]."""
    buf = bytearray(FRAME_BYTES)
    body_rx = 205 + 12 * math.sin(z * math.pi)
    body_ry = 150 + 10 * math.sin(z * math.pi)
    cx, cy = COLS / 2, ROWS / 2 - 10
    lungs = 0.15 < z < 0.9
    lung_ry = 85 * math.sin((z - 0.15) / 0.75 * math.pi) if lungs else 0.0
    fat_lane, soft_lane = _lane(FAT - NOISE_MEAN), _lane(SOFT - NOISE_MEAN)
    lung_lane, bone_lane = _lane(LUNG - NOISE_MEAN), _lane(BONE - NOISE_MEAN)
    table_lane = _lane(TABLE - NOISE_MEAN)
    for y in range(ROWS):
        row = 2 * COLS * y
        layers: list[tuple[tuple[int, int] | None, bytes]] = [
            (_ellipse_span(y, cy, cx, body_ry, body_rx), fat_lane),
            (_ellipse_span(y, cy, cx, body_ry - 14, body_rx - 14), soft_lane),
        ]
        if lungs and lung_ry > 5:
            layers.append((_ellipse_span(y, cy - 10, cx - 85, lung_ry, 60), lung_lane))
            layers.append((_ellipse_span(y, cy - 10, cx + 85, lung_ry, 60), lung_lane))
        layers.append((_ellipse_span(y, cy + 105, cx, 22, 22), bone_lane))
        if 0 < y - (cy + body_ry + 12) < 8:
            layers.append(((40, COLS - 40), table_lane))
        for span, lane in layers:
            if span is None:
                continue
            x0, x1 = span
            buf[row + 2 * x0 : row + 2 * x1] = lane * (x1 - x0)
    return bytes(buf)


class Frames:
    """Produces noisy slices; phantoms are cached per quantised z."""

    def __init__(self, seed: int, total: int) -> None:
        self.rng = random.Random(seed)
        self.total = max(1, total)
        self.cache: dict[int, int] = {}

    def frame(self, index: int) -> bytes:
        key = int(index / self.total * 64)  # 64 distinct anatomies along the series
        base = self.cache.get(key)
        if base is None:
            base = int.from_bytes(phantom(key / 64), "little")
            self.cache[key] = base
        noise = int.from_bytes(self.rng.randbytes(FRAME_BYTES), "little") & _NOISE_MASK
        # No lane overflows: every base lane is <= 4095 - 63 and noise <= 63.
        return (base + noise).to_bytes(FRAME_BYTES, "little")


def common(ds: Dataset, ids: dict[str, str], now: _dt.datetime) -> None:
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
    ds.AccessionNumber = "BENCH0001"
    ds.ReferringPhysicianName = ""
    ds.PatientName = "BENCH^SYNTHETIC^CT"
    ds.PatientID = "WARD-BENCH-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = ids["study"]
    ds.SeriesInstanceUID = ids["series"]
    ds.FrameOfReferenceUID = ids["frame_of_reference"]
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.Manufacturer = "Ward synthetic phantom"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLS
    ds.PixelSpacing = [0.9765625, 0.9765625]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = 40
    ds.WindowWidth = 400


def file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def save(ds: Dataset, fp) -> None:
    """Part 10 write, pydicom 3 or 2."""
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(fp, ds, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian = True
        ds.is_implicit_VR = False
        pydicom.dcmwrite(fp, ds, write_like_original=False)


def write_series(out: Path, count: int, seed: int) -> None:
    ids = {"study": new_uid(), "series": new_uid(), "frame_of_reference": new_uid()}
    now = _dt.datetime.now()
    frames = Frames(seed, count)
    for i in range(count):
        ds = Dataset()
        sop_instance = new_uid()
        ds.file_meta = file_meta(CT_IMAGE_STORAGE, sop_instance)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_instance
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Modality = "CT"
        common(ds, ids, now)
        ds.InstanceNumber = i + 1
        z = -0.5 * count + i * 1.0
        ds.ImagePositionPatient = [-250.0, -250.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = 1.0
        ds.SliceLocation = z
        ds.KVP = 120
        ds.AcquisitionNumber = 1
        ds.PixelData = frames.frame(i)
        ds["PixelData"].VR = "OW"
        path = out / f"ct_{i + 1:04d}.dcm"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fp:
            save(ds, fp)
        os.replace(tmp, path)


def write_large(out: Path, count: int, size_mb: float, seed: int, sop: str) -> None:
    n_frames = max(1, math.ceil(size_mb * 1024 * 1024 / FRAME_BYTES))
    pixel_len = n_frames * FRAME_BYTES
    if pixel_len >= 0xFFFFFFFE:
        sys.exit("gen_ct.py: pixel data must stay below 4 GiB in explicit VR little endian")
    ids = {"study": new_uid(), "series": new_uid(), "frame_of_reference": new_uid()}
    now = _dt.datetime.now()
    for n in range(count):
        frames = Frames(seed + n, n_frames)
        ds = Dataset()
        sop_instance = new_uid()
        sop_class = CT_IMAGE_STORAGE if sop == "ct" else MF_WORD_SC_STORAGE
        ds.file_meta = file_meta(sop_class, sop_instance)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_instance
        if sop == "ct":
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.Modality = "CT"
        else:
            ds.ImageType = ["DERIVED", "SECONDARY"]
            ds.Modality = "OT"
            ds.ConversionType = "WSD"
        common(ds, ids, now)
        ds.InstanceNumber = n + 1
        ds.NumberOfFrames = n_frames
        ds.FrameTime = 100.0
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        path = out / f"large_{int(size_mb)}mb_{n + 1:04d}.dcm"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fp:
            save(ds, fp)  # every element before Pixel Data
            # Pixel Data (7FE0,0010) OW, explicit VR: tag, VR, 2 reserved, 4-byte length.
            fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_len))
            for f in range(n_frames):
                fp.write(frames.frame(f))
        os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--count", type=int, default=None, help="objects to write (default 500, or 1 with --size-mb)")
    ap.add_argument("--size-mb", type=float, default=None, help="write multi-frame objects of about this many MiB")
    ap.add_argument("--sop", choices=("sc", "ct"), default="sc",
                    help="SOP class of large objects: multi-frame grayscale word SC (default) or CT with frames")
    ap.add_argument("--seed", type=int, default=1, help="pixel noise seed (UIDs are always fresh)")
    args = ap.parse_args(argv)

    count = args.count if args.count is not None else (1 if args.size_mb else 500)
    if count < 1:
        ap.error("--count must be at least 1")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.size_mb:
        write_large(args.out_dir, count, args.size_mb, args.seed, args.sop)
    else:
        write_series(args.out_dir, count, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
