"""The Compose stack as local processes: ``shipyard stack up|down|status``.

``plan`` says what runs with which settings (``specs`` is what a plan is made of, ``prometheus`` the
generated scrape config), ``processes`` starts, watches and stops detached process groups, ``runner``
puts them together with a state folder.
"""

from shipyard.orchestration.stack.plan import StackOptions, StackSettings
from shipyard.orchestration.stack.runner import (
    ServiceState,
    ServiceStatus,
    StackError,
    StackRun,
    Stopped,
    down,
    read_state,
    resolve_state_dir,
    status,
    up,
)

__all__ = [
    "ServiceState",
    "ServiceStatus",
    "StackError",
    "StackOptions",
    "StackRun",
    "StackSettings",
    "Stopped",
    "down",
    "read_state",
    "resolve_state_dir",
    "status",
    "up",
]
