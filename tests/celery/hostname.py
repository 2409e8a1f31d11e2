"""``[core] hostname_callable`` of the Celery test deployment.

Both Celery workers run on this machine, so ``socket.getfqdn()`` would give their task
instances the same hostname; each worker process gets its own name in
``CASTORE_DAM_TEST_HOSTNAME`` instead, which its tasks inherit and record.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_ENV = "CASTORE_DAM_TEST_HOSTNAME"


def worker_hostname() -> str:
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()
