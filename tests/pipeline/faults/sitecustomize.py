"""Faults injected into a real worker process for tests/pipeline/test_hardening.py.

Imported at interpreter start-up (``sitecustomize``) when the test puts this folder
on the worker's PYTHONPATH; ``CW_FAULT`` says which fault. The worker's own code
runs unchanged: only the domain function or the Kafka client below it misbehaves.
"""

from __future__ import annotations

import os

FAULT = os.environ.get("CW_FAULT", "")

if FAULT == "poison":
    # A defect that raises after a line reached the state (what no known input does).
    from streams.domain import state

    _accept = state.ProviderState.accept

    def _poisoned(self, line):  # type: ignore[no-untyped-def]
        outcome = _accept(self, line)
        if line.line_id == "poison-line":
            raise ZeroDivisionError("injected by tests/pipeline/faults")
        return outcome

    state.ProviderState.accept = _poisoned  # type: ignore[method-assign]

elif FAULT == "refuse-chunk":
    # The broker refuses the first checkpoint chunk (as Kafka does one above the
    # changelog's max.message.bytes); once, so that the restarted worker gets through.
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import MessageSizeTooLargeError

    _marker = os.environ["CW_FAULT_MARKER"]
    _send = AIOKafkaProducer.send

    async def _refusing(self, topic, value=None, key=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        if (
            topic.endswith("-state-changelog")
            and key is not None
            and key.lstrip(b'"').startswith(b"k:")  # the table's keys are JSON strings
            and not os.path.exists(_marker)
        ):
            with open(_marker, "w") as f:
                f.write(key.decode())
            refused = asyncio.get_running_loop().create_future()
            refused.set_exception(MessageSizeTooLargeError("injected by tests/pipeline/faults"))
            return refused
        return await _send(self, topic, value, key, *args, **kwargs)

    AIOKafkaProducer.send = _refusing  # type: ignore[method-assign]
