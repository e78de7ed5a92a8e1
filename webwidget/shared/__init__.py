"""State every worker and instance shares: one place, opened once (`open_shared`).

Renewal leases, cached message lists and rate-limit counters live where the sessions
live: Redis when the session store is Redis (every instance shares it), else the session
store's SQLite file (every worker on it shares it). `SharedState` is the small key-value
interface they are written against; `MemoryState` is its one-process stand-in for tests.
"""

from __future__ import annotations

from .interface import SharedState, SharedStateUnavailable
from .memory import MemoryState
from .open import Shared, open_shared

__all__ = ["MemoryState", "Shared", "SharedState", "SharedStateUnavailable", "open_shared"]
