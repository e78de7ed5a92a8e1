"""Fault injection: a run-time switchable config, drawn once per request.

The config lives in the store, so with a SQLite state file every process sees it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .store import Store

Operation = Literal["create_contact", "create_conversation", "list_messages", "send_message"]
OPERATIONS: tuple[Operation, ...] = (
    "create_contact", "create_conversation", "list_messages", "send_message"
)
Action = Literal["error", "reset", "malformed", "schema_violation", "error_body"]


class FaultConfig(BaseModel):
    """Faults to inject; every rate is a probability in [0, 1] per matching request."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0, ge=0)
    # An HTTP status to answer with; it applies with probability error_rate
    # (error_rate unset means always). error_rate alone answers 500.
    error_status: int | None = Field(None, ge=400, le=599)
    error_rate: float | None = Field(None, ge=0, le=1)
    hang_seconds: float = Field(0, ge=0)
    reset_rate: float = Field(0, ge=0, le=1)
    malformed_rate: float = Field(0, ge=0, le=1)
    schema_violation_rate: float = Field(0, ge=0, le=1)
    error_body_rate: float = Field(0, ge=0, le=1)
    operations: list[Operation] = Field(default_factory=lambda: list(OPERATIONS))
    # Apply only to the next N matching requests, then switch off.
    times: int | None = Field(None, ge=1)


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one request: wait, hang, and at most one action."""

    latency_s: float = 0.0
    hang_s: float = 0.0
    action: Action | None = None
    status: int = 500


def draw(store: Store, op: str) -> FaultPlan:
    """Decide the faults for one request to ``op``, consuming one of ``times``."""
    with store.transaction() as db:
        raw = store.get_control("faults")
        if raw is None:
            return FaultPlan()
        faults = FaultConfig.model_validate(raw)
        if op not in faults.operations:
            return FaultPlan()
        if faults.times is not None:
            left = faults.times - 1
            store.set_control(
                "faults", faults.model_copy(update={"times": left}).model_dump() if left else None,
                db,
            )
    return FaultPlan(
        latency_s=faults.latency_ms / 1000,
        hang_s=faults.hang_seconds,
        action=_pick_action(faults),
        status=faults.error_status or 500,
    )


def _pick_action(faults: FaultConfig) -> Action | None:
    error_rate = faults.error_rate
    if error_rate is None:
        error_rate = 1.0 if faults.error_status is not None else 0.0
    chances: list[tuple[Action, float]] = [
        ("reset", faults.reset_rate),
        ("error", error_rate),
        ("malformed", faults.malformed_rate),
        ("schema_violation", faults.schema_violation_rate),
        ("error_body", faults.error_body_rate),
    ]
    # Faults are simulation, not security: the plain PRNG is right here.
    for action, rate in chances:
        if rate > 0 and random.random() < rate:
            return action
    return None


def set_faults(store: Store, faults: FaultConfig) -> None:
    """Switch faults on (replacing any earlier config)."""
    store.set_control("faults", faults.model_dump())


def clear_faults(store: Store) -> None:
    """Switch all faults off."""
    store.set_control("faults", None)
