"""Compares pairs of DICOM files as parsed data sets (the File Meta group aside).
Arguments: SENT STORED [SENT STORED ...]. Prints one line per difference; exit 1 if any."""
import sys

from pydicom import dcmread




def compare(a, b):
    # Compare element by element, recursing into sequences, on the raw values pydicom parsed.
    da = dcmread(a)
    db = dcmread(b)
    diffs = []

    def walk(x, y, where):
        tags_x = [t for t in x.keys() if t.group != 0x0002]
        tags_y = [t for t in y.keys() if t.group != 0x0002]
        if tags_x != tags_y:
            diffs.append(f"{where}: tags differ ({len(tags_x)} vs {len(tags_y)})")
            return
        for t in tags_x:
            ex, ey = x[t], y[t]
            if ex.VR != ey.VR:
                diffs.append(f"{where}{t}: VR {ex.VR} vs {ey.VR}")
            elif ex.VR == "SQ":
                if len(ex.value) != len(ey.value):
                    diffs.append(f"{where}{t}: {len(ex.value)} vs {len(ey.value)} items")
                else:
                    for i, (ix, iy) in enumerate(zip(ex.value, ey.value)):
                        walk(ix, iy, f"{where}{t}[{i}]")
            elif ex.value != ey.value:
                diffs.append(f"{where}{t}: values differ")

    walk(da, db, "")
    return diffs


args = sys.argv[1:]
bad = 0
for sent, stored in zip(args[::2], args[1::2]):
    for d in compare(sent, stored):
        bad += 1
        print(f"{sent}: {d}")
sys.exit(1 if bad else 0)
