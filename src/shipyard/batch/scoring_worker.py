"""The entry point of a batch scoring worker process: ``python -m shipyard.batch.scoring_worker FD``,
started by ``batch.parallel.ScoringPool`` with its end of a socket pair as file descriptor FD."""

from __future__ import annotations

import os
import sys
from multiprocessing.connection import Connection
from typing import NoReturn


def main(argv: list[str]) -> NoReturn:
    from shipyard.batch.parallel import worker_main

    worker_main(Connection(int(argv[0])))
    sys.stderr.flush()
    os._exit(0)  # nothing left to flush or close: skip the interpreter's seconds-long teardown


if __name__ == "__main__":
    main(sys.argv[1:])
