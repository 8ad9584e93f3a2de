"""The access log: one JSON line per request, buffered and written in batches.

Measured under load, formatting through ``logging`` and writing one line per request to stderr cost
about 30% of throughput. Lines are rendered with orjson, kept in memory and written when the buffer
holds ``max_lines`` or when ``flush`` runs (every second from the service, and at shutdown), so at
most about a second of lines is lost if the process is killed outright.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import orjson


class AccessLog:
    def __init__(self, stream: IO[str] | None = None, max_lines: int = 256) -> None:
        self.stream = stream
        self.max_lines = max_lines
        self._lines: list[bytes] = []

    def write(self, fields: dict[str, Any]) -> None:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
            "level": "INFO",
            "logger": "shipyard.access",
            "message": "request",
            **fields,
        }
        self._lines.append(orjson.dumps(line))
        if len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        stream = self.stream or sys.stderr
        stream.write(b"\n".join(lines).decode() + "\n")
        stream.flush()
