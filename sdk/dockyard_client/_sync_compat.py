"""What only the sync flavour has; the twin of `_async_compat.py` (same names, see there).

`_sync.py` is generated from `_async.py`, which imports these names from `_async_compat`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from dockyard_client._sync import Job

__all__ = ["FLAVOUR", "Creating", "creating", "sleep"]  # the twin has the same

FLAVOUR = "sync"
sleep = time.sleep

# The sync `jobs.create` answers the job's handle itself (a context manager that deletes the job).
Creating: TypeAlias = "Job"


def creating(make: Callable[[], Job]) -> Job:
    """The answer of `jobs.create`: the job, created now."""
    return make()
