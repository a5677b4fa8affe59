"""C-ECHO over TLS with pynetdicom, presenting a client certificate. Prints ACCEPTED <status>,
REJECTED or ABORTED. Arguments: HOST PORT CALLING CALLED CA_PEM CERT_PEM KEY_PEM"""
import ssl
import sys

from pynetdicom import AE

host, port, calling, called, ca, cert, key = sys.argv[1:8]
ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
ctx.load_cert_chain(cert, key)
ae = AE(ae_title=calling)
ae.acse_timeout = ae.network_timeout = 10
ae.add_requested_context("1.2.840.10008.1.1")
assoc = ae.associate(host, int(port), ae_title=called, tls_args=(ctx, host))
if assoc.is_established:
    status = assoc.send_c_echo()
    print("ACCEPTED", hex(status.Status) if status else "none", flush=True)
    assoc.release()
elif assoc.is_rejected:
    print("REJECTED", flush=True)
else:
    print("ABORTED", flush=True)
