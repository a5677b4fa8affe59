"""Checks that retrieved files hold the decoded pixel data of compressed originals, against
DCMTK's decoding of the original (dcmdjpeg or dcmdrle, colour by pixel).

  pixels.py TOLERANCE ORIGINAL RETRIEVED [ORIGINAL RETRIEVED ...]

Each RETRIEVED file must be in explicit VR little endian with the reference's image attributes
and samples, which must be equal for lossless originals and within TOLERANCE levels for lossy
JPEG (decoders may round the inverse DCT and the colour conversion differently). Prints one line
per difference; exit 1 if any."""
import array
import os
import subprocess
import sys
import tempfile

from pydicom import dcmread

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
ATTRIBUTES = ["Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "NumberOfFrames",
              "PhotometricInterpretation"]


def reference(original, scratch):
    """The original decoded by DCMTK, colour by pixel."""
    header = dcmread(original, stop_before_pixels=True)
    ts = header.file_meta.TransferSyntaxUID
    out = os.path.join(scratch, os.path.basename(original))
    if ts == RLE:
        cmd = ["/usr/bin/dcmdrle", original, out]
    else:
        cmd = ["/usr/bin/dcmdjpeg", "+px", original, out]
    subprocess.run(cmd, check=True, capture_output=True)
    return ts, header.get("LossyImageCompression"), dcmread(out)


def by_pixel(ds):
    """Pixel data bytes with the samples of each pixel together."""
    data = ds.PixelData
    if ds.get("SamplesPerPixel", 1) == 1 or ds.get("PlanarConfiguration", 0) == 0:
        return data
    width = ds.BitsAllocated // 8
    plane = ds.Rows * ds.Columns * width
    frame_len = plane * ds.SamplesPerPixel
    out = bytearray()
    for f in range(int(ds.get("NumberOfFrames", 1))):
        frame = data[f * frame_len:(f + 1) * frame_len]
        for p in range(0, plane, width):
            for s in range(ds.SamplesPerPixel):
                out += frame[s * plane + p:s * plane + p + width]
    return bytes(out)


def samples(data, bits):
    values = array.array({8: "B", 16: "H", 32: "I"}[bits], data)
    if sys.byteorder == "big" and bits > 8:
        values.byteswap()
    return values


def check(original, retrieved, tolerance, scratch):
    ts, lossy, ref = reference(original, scratch)
    got = dcmread(retrieved)
    diffs = []
    if got.file_meta.TransferSyntaxUID != EXPLICIT_VR_LITTLE_ENDIAN:
        diffs.append(f"transfer syntax {got.file_meta.TransferSyntaxUID}")
    for name in ATTRIBUTES:
        if ref.get(name) != got.get(name):
            diffs.append(f"{name} {got.get(name)!r}, expected {ref.get(name)!r}")
    if got.get("SamplesPerPixel", 1) > 1 and got.get("PlanarConfiguration") != 0:
        diffs.append(f"PlanarConfiguration {got.get('PlanarConfiguration')!r}")
    if got.get("LossyImageCompression") != ("01" if ts in LOSSY else lossy):
        diffs.append(f"LossyImageCompression {got.get('LossyImageCompression')!r}")
    if diffs:
        return diffs
    frames = int(ref.get("NumberOfFrames", 1))
    length = ref.Rows * ref.Columns * ref.SamplesPerPixel * ref.BitsAllocated // 8 * frames
    a = samples(by_pixel(ref)[:length], ref.BitsAllocated)
    b = samples(got.PixelData[:length], ref.BitsAllocated)
    if len(b) != len(a):
        return [f"{len(b)} samples, expected {len(a)}"]
    allowed = tolerance if ts in LOSSY else 0
    worst = max((abs(x - y) for x, y in zip(a, b)), default=0)
    if worst > allowed:
        return [f"samples differ by up to {worst} (allowed {allowed})"]
    print(f"{os.path.basename(original)}: {len(a)} samples, max difference {worst}")
    return []


tolerance = int(sys.argv[1])
args = sys.argv[2:]
bad = 0
with tempfile.TemporaryDirectory() as scratch:
    for original, retrieved in zip(args[::2], args[1::2]):
        for d in check(original, retrieved, tolerance, scratch):
            bad += 1
            print(f"{original}: {d}")
sys.exit(1 if bad else 0)
