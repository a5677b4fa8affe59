"""C-STORE files with pynetdicom, one association, printing one line per file:
`OK <SOPInstanceUID>` once the SCP has acknowledged it, `FAIL <status> <path>` otherwise.
Used by Ward's tests to learn exactly which objects a real client saw acknowledged."""
import sys

from pydicom import dcmread
from pynetdicom import AE

host, port, calling, called = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
paths = sys.argv[5:]

datasets = [(p, dcmread(p)) for p in paths]
ae = AE(ae_title=calling)
ae.acse_timeout = 30
ae.dimse_timeout = 60
ae.network_timeout = 30
contexts = sorted({(ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.TransferSyntaxUID) for _, ds in datasets})
for sop_class, ts in contexts:
    ae.add_requested_context(sop_class, ts)
assoc = ae.associate(host, port, ae_title=called)
if not assoc.is_established:
    print("REJECTED", flush=True)
    sys.exit(3)
failures = 0
for path, ds in datasets:
    status = assoc.send_c_store(ds)
    if not status:
        print("LOST", path, flush=True)
        sys.exit(4)
    code = status.Status
    if code == 0 or (code & 0xF000) == 0xB000:
        print("OK", ds.SOPInstanceUID, flush=True)
    else:
        failures += 1
        print("FAIL", hex(code), path, flush=True)
assoc.release()
sys.exit(1 if failures else 0)
