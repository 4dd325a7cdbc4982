"""The ingest agent applies a checkpoint's tombstones to the Faust table (no broker).

Uses the ``agent.test_context()`` harness of ``test_agents``: the table is Faust's
memory store, so a ``None`` in ``Output.writes`` must become a deleted key there (and
a tombstone in the changelog), not a stored ``None``.
"""

from __future__ import annotations

import orjson

from tests.conftest import AGB
from tests.pipeline.test_agents import SETTINGS, batch, harness  # noqa: F401 - fixture


async def test_a_checkpoint_deletes_the_journal_segments_it_replaces(harness, make_line):  # noqa: F811
    processor = harness.worker.processor
    processor.checkpoint_segments = 2
    ingest = harness.app.agents["ingest"]
    async with ingest.test_context() as agent:
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), AGB)
        assert harness.state_keys() == {f"h:{AGB}", f"j:{AGB}:0"}
        await harness.put(agent, SETTINGS.topic_declarations, batch(make_line()), AGB)
    assert harness.state_keys() == {f"h:{AGB}", f"k:{AGB}:1:0"}
    header = orjson.loads(harness.app.tables["state"][f"h:{AGB}"])
    assert header["log"] == {"end": 1, "base": 1, "generation": 1, "chunks": 1, "records": 0}
    checkpoint = orjson.loads(harness.app.tables["state"][f"k:{AGB}:1:0"])
    assert sum(len(index) for index in checkpoint["lines"].values()) == 2
