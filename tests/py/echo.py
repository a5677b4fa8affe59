"""C-ECHO with pynetdicom; prints ACCEPTED <status> or REJECTED and the reject details."""
import sys

from pynetdicom import AE

host, port, calling, called = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ae = AE(ae_title=calling)
ae.acse_timeout = 10
ae.add_requested_context("1.2.840.10008.1.1")
assoc = ae.associate(host, port, ae_title=called)
if assoc.is_established:
    status = assoc.send_c_echo()
    print("ACCEPTED", hex(status.Status) if status else "none", flush=True)
    assoc.release()
elif assoc.is_rejected:
    print("REJECTED", flush=True)
else:
    print("ABORTED", flush=True)
