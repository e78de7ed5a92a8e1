"""Typed failures of the session layer."""

from __future__ import annotations


class SessionStoreUnavailable(Exception):
    """The session store cannot be reached or is locked; answer 503 and let the visitor retry."""


class CorruptSessionRecord(ValueError):
    """A stored record is not valid JSON of the expected shape; it is discarded."""
