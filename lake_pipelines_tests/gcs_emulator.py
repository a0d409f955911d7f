"""gcp-storage-emulator with a listen backlog that a parallel reader cannot overflow.

Run as ``python -m lake_pipelines_tests.gcs_emulator start --host H --port P --in-memory``.

The emulator serves one request at a time on `http.server.HTTPServer`, whose listen backlog is
5. DataFusion's Iceberg provider (pyiceberg-core) opens dozens of connections at once; once
six wait, Linux drops the next handshakes and the clients retry after 1, 2, 4, 8 s. On a busy
machine that chain passed pyiceberg-core's 10 s io timeout and failed a CI run. Here every
connection is queued at once (the kernel caps the backlog at ``net.core.somaxconn``) and still
served one at a time, in order, as the emulator was written to be.
"""

from __future__ import annotations

import http.server
import sys

BACKLOG = 1024


class _Backlogged(http.server.HTTPServer):
    request_queue_size = BACKLOG


def main() -> int:
    # The emulator builds its server as ``http.server.HTTPServer(...)`` when it starts.
    http.server.HTTPServer = _Backlogged  # type: ignore[misc]
    from gcp_storage_emulator.__main__ import main as emulator_main

    emulator_main(sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
