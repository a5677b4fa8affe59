"""Drives Ward's DICOMweb front door with dicomweb-client (a client nobody here wrote) and prints
one JSON document with what it saw, for crates/ward/tests/dicomweb.rs to assert on.

usage: dicomweb.py URL CA_PEM TOKEN|- COMMAND ARGS...
  store FILE...                      STOW-RS; prints stored and failed SOP Instance UIDs
  search LEVEL [KEY=VALUE...]        QIDO-RS studies|series|instances; prints the matches
  retrieve_study STUDY FILE...       WADO-RS; compares each instance with the original files
  series_metadata STUDY SERIES       WADO-RS metadata; prints attribute counts and bulk URIs
  frames STUDY SERIES INSTANCE N     WADO-RS frames; prints each frame's length
  rendered STUDY SERIES INSTANCE     WADO-RS rendered (PNG); prints the image's size
  refused                            every call above without a token; prints status codes
  frames_match FILE TOLERANCE [MEDIA TS]
                                     WADO-RS frames of FILE's instance (the client's default
                                     Accept, or MEDIA with transfer syntax TS) against pydicom:
                                     its decoded pixels, or with MEDIA its encapsulated frames;
                                     prints the frame lengths and the largest sample difference
  bulkdata FILE TAG                  the attribute's (8 hex digits) BulkDataURI from the metadata,
                                     retrieved; prints whether it equals pydicom's value
  rendered_match FILE                WADO-RS rendered PNG of FILE's instance, decoded; prints its
                                     size and mode, and whether it equals pydicom's pixels
"""
import json
import sys

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

url, ca, token, command, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
session = requests.Session()
session.verify = ca
# requests lets REQUESTS_CA_BUNDLE override a session's own CA; this session trusts Ward's CA only.
session.trust_env = False
headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
client = DICOMwebClient(url=url, session=session, headers=headers)


def uid_list(dataset, sequence):
    return [str(item.ReferencedSOPInstanceUID) for item in dataset.get(sequence, [])]


def status_of(call):
    try:
        call()
        return 200
    except requests.exceptions.HTTPError as e:
        return e.response.status_code


out = {}
if command == "store":
    datasets = [pydicom.dcmread(p) for p in args]
    try:
        response = client.store_instances(datasets)
        out = {
            "status": 200,
            "stored": uid_list(response, "ReferencedSOPSequence"),
            "failed": uid_list(response, "FailedSOPSequence"),
        }
    except requests.exceptions.HTTPError as e:
        out = {"status": e.response.status_code}
elif command == "search":
    level, filters = args[0], dict(a.split("=", 1) for a in args[1:])
    search = {
        "studies": client.search_for_studies,
        "series": client.search_for_series,
        "instances": client.search_for_instances,
    }[level]
    matches = search(search_filters=filters)
    out = {"matches": [pydicom.Dataset.from_json(m) for m in matches]}
    out["matches"] = [
        {k: str(v.value) for k, v in ((e.keyword, e) for e in ds) if k} for ds in out["matches"]
    ]
elif command == "retrieve_study":
    study, paths = args[0], args[1:]
    originals = {}
    for p in paths:
        ds = pydicom.dcmread(p)
        originals[str(ds.SOPInstanceUID)] = ds
    retrieved = client.retrieve_study(study)
    out = {"retrieved": len(retrieved), "same": [], "different": []}
    for ds in retrieved:
        uid = str(ds.SOPInstanceUID)
        original = originals.get(uid)
        same = original is not None and all(
            original[e.tag].value == ds[e.tag].value for e in original if e.tag in ds
        ) and len(original) == len(ds)
        out["same" if same else "different"].append(uid)
elif command == "series_metadata":
    metadata = client.retrieve_series_metadata(args[0], args[1])
    out = {
        "instances": len(metadata),
        "bulk": sorted({k for m in metadata for k, v in m.items() if "BulkDataURI" in v}),
        "attributes": min(len(m) for m in metadata),
    }
elif command == "frames":
    study, series, instance, n = args[0], args[1], args[2], int(args[3])
    frames = client.retrieve_instance_frames(study, series, instance, frame_numbers=list(range(1, n + 1)))
    out = {"frames": [len(f) for f in frames]}
elif command == "rendered":
    image = client.retrieve_instance_rendered(args[0], args[1], args[2], media_types=("image/png",))
    out = {"bytes": len(image), "png": image[:8] == b"\x89PNG\r\n\x1a\n"}
elif command == "refused":
    fake = "1.2.3"
    out = {
        "search": status_of(lambda: client.search_for_studies()),
        "retrieve": status_of(lambda: client.retrieve_study(fake)),
        "metadata": status_of(lambda: client.retrieve_series_metadata(fake, fake)),
        "store": status_of(lambda: client.store_instances([pydicom.dcmread(args[0])])),
    }
elif command in ("frames_match", "bulkdata", "rendered_match"):
    import numpy as np

    ds = pydicom.dcmread(args[0])
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if command == "frames_match":
        media = ((args[2], args[3]),) if len(args) > 3 else None
        frames = client.retrieve_instance_frames(
            *uids, frame_numbers=list(range(1, n + 1)), media_types=media
        )
        if media:
            expected = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=n))
        elif ds.file_meta.TransferSyntaxUID.is_compressed:
            array = ds.pixel_array.reshape(n, -1)
            expected = [a.astype(a.dtype.newbyteorder("<")).tobytes() for a in array]
        else:
            length = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
            expected = [ds.PixelData[i * length:(i + 1) * length] for i in range(n)]
        dtype = "u1" if media or ds.BitsAllocated == 8 else f"<u{ds.BitsAllocated // 8}"
        diffs = [
            int(np.abs(np.frombuffer(f, dtype).astype(np.int64)
                       - np.frombuffer(e, dtype).astype(np.int64)).max())
            if len(f) == len(e) else -1
            for f, e in zip(frames, expected)
        ]
        out = {
            "frames": [len(f) for f in frames],
            "expected": [len(e) for e in expected],
            "max_diff": max(diffs) if -1 not in diffs else -1,
            "within": -1 not in diffs and max(diffs) <= int(args[1]),
        }
    elif command == "bulkdata":
        tag = int(args[1], 16)
        metadata = client.retrieve_instance_metadata(*uids)
        uri = metadata[args[1].upper()]["BulkDataURI"]
        parts = client.retrieve_bulkdata(uri)
        out = {
            "path": uri.split("/bulkdata/", 1)[1],
            "parts": len(parts),
            "equal": len(parts) == 1 and parts[0] == ds[tag].value,
        }
    else:
        import io
        from PIL import Image

        png = client.retrieve_instance_rendered(*uids, media_types=("image/png",))
        image = Image.open(io.BytesIO(png))
        pixels = np.asarray(image)
        out = {
            "size": list(image.size),
            "mode": image.mode,
            "equal": pixels.shape == ds.pixel_array.shape
            and bool((pixels == ds.pixel_array).all()),
        }
else:
    sys.exit(f"unknown command {command}")
print(json.dumps(out))
