"""Identifiers in the shapes the Realtime protocol uses (`event_...`, `item_...`, `resp_...`)."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"
