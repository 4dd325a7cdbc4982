"""Lines of a message without a provider key, judged and made fit to travel again.

On Kafka a declarations message is keyed by its provider, which puts it in the
partition that holds the provider's state. A message that came without a (valid)
key is judged where it landed, up to the checks that need no state (SPEC §2 steps
1–3 and 2b: JSON, schema, time, BSN shape, batch provider); its rejected lines are
dead-lettered there, and the lines that passed are sent on, keyed, to the worker's
internal control topic, which is co-partitioned with the declarations.

What is sent on is pseudonymised and holds nothing the state does not need: the
``client_ref`` becomes the 60-bit key the state keeps of it anyway (``key_of``,
written as ``CLIENT_KEY_MARK`` + 15 hex digits), ``trajectory_id`` becomes ``-``,
and unknown fields are dropped. The state reads such a ``client_ref`` as the key it
stands for (``ProviderState.accept``), so a client counts once whether its lines
came keyed or not. An internal topic therefore never holds a client reference.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.domain import schemas
from streams.domain.acceptance import (
    BATCH_SCHEMA,
    DeadLetter,
    Rejection,
    line_payload,
    message_payload,
)
from streams.domain.model import PROCESSING_ERROR, Counts, Line, is_agb
from streams.domain.state import key_of

__all__ = ["CLIENT_KEY_MARK", "client_token", "is_agb", "pseudonymised", "split_unkeyed"]

# A client_ref of the form CLIENT_KEY_MARK + 15 lower-case hex digits is the state key
# of a client_ref that was pseudonymised on the way here (a NUL character cannot be
# typed by accident, and no pseudonym service emits one).
CLIENT_KEY_MARK = "\x00"
_KEPT = frozenset(schemas.load_schema(schemas.DECLARATION)["properties"]) - {
    "client_ref",
    "trajectory_id",
}


def client_token(client_ref: str) -> str:
    return f"{CLIENT_KEY_MARK}{key_of(client_ref):015x}"


def pseudonymised(line: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid line with only what the state needs, its client as a key."""
    out = {k: v for k, v in line.items() if k in _KEPT}
    out["client_ref"] = client_token(line["client_ref"])
    out["trajectory_id"] = "-"
    return out


def split_unkeyed(
    decoder: Any, raw: bytes, counts: Counts, dead_letters: list[DeadLetter]
) -> tuple[int, dict[str, bytes]]:
    """Judge an unkeyed message: its rejected lines go to ``dead_letters`` and are
    counted in ``counts`` (the partition's ledger); the others come back as one batch
    message per provider, pseudonymised, in their order. Returns (lines judged here,
    batches): the lines sent on are counted where they are processed."""
    envelope, items, rejection = decoder.split(raw)
    if rejection is not None:
        counts.reject(rejection.reason)
        dead_letters.append(DeadLetter(None, message_payload(raw), *rejection))
        return 0, {}
    rejected = 0
    single = envelope is None and len(items) == 1
    objects: list[Any] | None = None
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for index, item in enumerate(items):
        try:
            checked = decoder.check(item, envelope)
        except Exception as exc:  # noqa: BLE001 - SPEC §12: this line alone, as Engine._apply
            checked = Rejection(PROCESSING_ERROR, type(exc).__name__)
        if type(checked) is not Line:
            counts.reject(checked.reason)
            owner = envelope if envelope is not None else _named(item)
            dead_letters.append(DeadLetter(owner, line_payload(raw, single, index, item), *checked))
            rejected += 1
            continue
        if type(item) is dict:
            obj = item
        else:
            if objects is None:
                decoded = orjson.loads(raw)
                objects = [decoded] if single else decoded["lines"]
            obj = objects[index]
        by_provider.setdefault(checked.provider, []).append(pseudonymised(obj))
    batches = {
        provider: orjson.dumps({"schema": BATCH_SCHEMA, "provider_agb": provider, "lines": lines})
        for provider, lines in by_provider.items()
    }
    return rejected, batches


def _named(item: Any) -> str | None:
    agb = item.get("provider_agb") if type(item) is dict else getattr(item, "provider_agb", None)
    return agb if is_agb(agb) else None
