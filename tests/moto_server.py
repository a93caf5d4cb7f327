"""moto server, handling one request at a time.

DynamoDB evaluates a conditional write and a transaction atomically
(transactions are serializable). moto's threaded server checks conditions and
writes without a lock, so two racing requests can both pass one condition:
racing tests would then see moto's races, not ours. A lock around each request
restores the atomicity the real service guarantees, while connections are
still served on threads (a single-threaded server would starve keep-alive
clients). Usage as `python3 -m moto.server`: -H host -p port.
"""

import sys
import threading

from moto import server

_lock = threading.Lock()
_dispatch = server.DomainDispatcherApplication.__call__


def _one_at_a_time(self, environ, start_response):
    # moto builds the whole response inside the call, so the lock covers the work.
    with _lock:
        return _dispatch(self, environ, start_response)


server.DomainDispatcherApplication.__call__ = _one_at_a_time

if __name__ == "__main__":
    server.main(sys.argv[1:])
