"""Identifier checks shared by every service."""

from __future__ import annotations

import uuid


def is_uuid(value: str) -> bool:
    """True for any spelling uuid.UUID accepts (ids in requests and keys)."""
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False
