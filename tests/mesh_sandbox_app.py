"""NHS England's mesh-sandbox app (`mesh_sandbox.api:app`), its log made fit
for the privacy scan. Served by tests/mesh_sandbox.sh through uvicorn.

The sandbox ends each request's log line with `<url> <status> <seconds>`,
e.g. `.../messageexchange/X26ABC1 403 0.00069`: the mailbox's last digit, the
status and the seconds, joined by single spaces and a dot, are ten digits in
the NHS number groupings tests/privacy_scan.py must catch, and about one in
eleven such chains passes Modulus 11. Naming the two numbers
(`status=403 seconds=0.00069`) breaks the chain and nothing else: the URL, where
a leaked NHS number would be, is logged unchanged.
"""

import logging
import re

from mesh_sandbox.api import app  # noqa: F401  (also configures its logger)

_END = re.compile(r"^(end \S+ \S+) (\d{3}) ([0-9.]+)$")


class _NamedNumbers(logging.Filter):
    def filter(self, record):
        match = _END.match(record.getMessage())
        if match:
            record.msg = f"{match[1]} status={match[2]} seconds={match[3]}"
            record.args = ()
        return True


logging.getLogger("mesh-sandbox").addFilter(_NamedNumbers())
