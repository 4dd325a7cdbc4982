"""No client reference, and no BSN-shaped value, leaves through logs, metrics or alerts.

A generated history (``streams/replay/generate.py``) plus hostile lines go through
the worker's processing path (``tests/security/worker_sim.py``: ``Processor`` as the
ingest agent calls it, dead-letter headers as the agent builds them) with every
logger captured at DEBUG, and the Prometheus collector (``streams/metrics.py``)
scraped at the end. Then every output an operator or purchaser sees is scanned:

- log records,
- the ``/metrics`` text exposition,
- alert events as published on the alerts topic (``message`` included),
- dead-letter headers (``reason``, ``detail``),
- the snapshot (what ``/snapshot`` serves).

None may contain a ``client_ref`` of the input, nor any of the BSN-shaped values the
hostile lines carry. Dead-letter *payloads* are the original bytes by SPEC §1, so
they do carry client references; they may not carry a BSN-shaped ``client_ref`` in
the clear. (docs/operations.md, "Personal data", records these decisions.)
"""

from __future__ import annotations

import logging
import re

import orjson
import pytest

from streams.domain.policy import load_policy
from streams.domain.state import key_of
from streams.metrics import WorkerMetrics
from streams.pipeline.processor import contract_control
from streams.replay.generate import GenerateOptions, iter_history
from tests.security.worker_sim import WorkerSim

POLICY = load_policy()
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')  # JSON strings and Prometheus label values
_NINE = re.compile(r"(?<![0-9])[0-9]{9}(?![0-9])")
AGB_BATCH = 200
# BSN-shaped values (they pass the eleven-test) planted in hostile input.
BSN_CLIENT, BSN_ESCAPED, BSN_TRAJECTORY, BSN_LINE, BSN_EVENT, BSN_KEY = (
    "123456782",
    "111222333",
    "987654321",
    "246813579",
    "135792468",
    "192837465",
)
BSNS = (BSN_CLIENT, BSN_ESCAPED, BSN_TRAJECTORY, BSN_LINE, BSN_EVENT, BSN_KEY)


def hostile(provider: str, template: dict) -> list[tuple[str | None, bytes]]:
    """Messages a careless or hostile producer might send for ``provider``."""

    def line(n: int, **fields: object) -> dict:
        obj = {**template, "event_id": f"hostile-e{n}", "line_id": f"hostile-l{n}"}
        obj.update(fields)
        return obj

    adhd = line(1, client_ref="adhd-client-marker-1", diagnosis_group="adhd")
    bsn_plain = orjson.dumps(line(2, client_ref=BSN_CLIENT))
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in BSN_ESCAPED).encode()
    bsn_escaped = bsn_plain.replace(BSN_CLIENT.encode(), escaped).replace(
        b"hostile-e2", b"hostile-e3"
    )
    ids = line(4, trajectory_id=BSN_TRAJECTORY, event_id=BSN_EVENT)
    orphan = line(5, kind="credit", line_id=BSN_LINE, client_ref="orphan-client-marker")
    batch = {
        "schema": "ggz.declaration-batch/1",
        "provider_agb": provider,
        "lines": [line(6, client_ref=BSN_CLIENT), line(7, client_ref="batch-client-marker")],
    }
    return [
        (provider, orjson.dumps(adhd)),
        (provider, bsn_plain),
        (provider, bsn_escaped),
        (None, bsn_plain),  # keyless: re-keyed by the provider it names
        (provider, orjson.dumps(ids)),
        (provider, orjson.dumps(orphan)),
        (provider, orjson.dumps(batch)),
        (BSN_KEY, orjson.dumps(line(8, client_ref="bsn-key-client-marker"))),  # no AGB: re-keyed
        ("87654321", orjson.dumps(line(9, client_ref="wrong-key-client-marker"))),
        (provider, b'{"client_ref": "' + BSN_CLIENT.encode() + b'", "truncated'),
    ]


@pytest.fixture(scope="module")
def run() -> dict:
    """Process the history once; collect everything an outsider could see."""
    handler = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        sim = WorkerSim(POLICY, clock=lambda: 1_780_000_000.0)  # 2026-05-28: metrics show 2025/26
        metrics = WorkerMetrics(sim.engine, clock=lambda: 1_780_000_000.0)
        refs: set[str] = set()
        buffers: dict[str, list[bytes]] = {}
        template: dict | None = None

        def send(key: str | None, raw: bytes) -> None:
            for out in sim.declarations(key, raw):
                if not out.skipped:
                    metrics.record(out)
            metrics.messages += 1

        def flush() -> None:
            for agb, lines in buffers.items():
                if lines:
                    send(agb, b'{"schema":"ggz.declaration-batch/1","provider_agb":"%s","lines":[%s]}'
                         % (agb.encode(), b",".join(lines)))  # fmt: skip
            buffers.clear()

        options = GenerateOptions(providers=6, lines=20_000, seed=11, malformed_rate=0.01)
        for n, item in enumerate(iter_history(options)):
            if item.kind == "contract":
                flush()
                obj = orjson.loads(item.value)
                sim.control(sim.partition_of(obj["provider_agb"]), contract_control(obj))
                continue
            try:
                obj = orjson.loads(item.value)
            except orjson.JSONDecodeError:
                send(None, item.value)  # unreadable: unkeyed, as the producer sends it
                continue
            if isinstance(obj.get("client_ref"), str):
                refs.add(obj["client_ref"])
            if template is None and obj.get("activity") == "consult":
                template = obj
            agb = obj.get("provider_agb")
            if not (isinstance(agb, str) and len(agb) == 8 and agb.isdigit()):
                send(None, item.value)
                continue
            buffers.setdefault(agb, []).append(item.value)
            if len(buffers[agb]) >= AGB_BATCH:
                flush()
            if n % 5000 == 0:
                flush()
                sim.tick()
        flush()
        assert template is not None
        agb = template["provider_agb"]
        for key, raw in hostile(agb, template):
            send(key, raw)
            for marker in re.findall(rb'"client_ref":"([^"]+)"', raw):
                refs.add(marker.decode())
        sim.tick()
        exposition = metrics.exposition()[0].decode()
        snapshot = sim.engine.snapshot()
        snapshot["firing"] = sorted(
            aid for st in sim.engine.providers.values() for aid, _ in st.alerts.firing()
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    refs.discard(BSN_CLIENT)  # scanned for as a BSN below
    return {
        "sim": sim,
        "refs": refs,
        "surfaces": {
            "logs": "\n".join(handler.lines),
            "metrics": exposition,
            "alerts": "\n".join(orjson.dumps(a).decode() for a in sim.published.alerts),
            "dead-letter headers": "\n".join(
                f"{k}={v.decode()}" for h in sim.published.headers for k, v in h.items()
            ),
            "snapshot": orjson.dumps(snapshot).decode(),
        },
    }


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.__dict__}")


def test_the_run_exercises_every_surface(run: dict) -> None:
    s = run["sim"].published
    assert len(run["refs"]) > 500
    assert s.alerts, "the history should fire alerts"
    assert {d.reason for d in s.dead_letters} >= {
        "invalid_json",
        "schema",
        "bsn_like_client_ref",
        "orphan_credit",
        "batch_provider_mismatch",
    }
    assert "claimwatch_provider_adhd_clients" in run["surfaces"]["metrics"]


@pytest.mark.parametrize(
    "surface", ["logs", "metrics", "alerts", "dead-letter headers", "snapshot"]
)
def test_no_client_ref_appears(run: dict, surface: str) -> None:
    text = run["surfaces"][surface]
    leaked = sorted(ref for ref in run["refs"] if ref in text)
    assert not leaked, f"{surface} shows client references: {leaked[:5]}"


@pytest.mark.parametrize(
    "surface", ["logs", "metrics", "alerts", "dead-letter headers", "snapshot"]
)
def test_no_bsn_shaped_value_appears(run: dict, surface: str) -> None:
    text = run["surfaces"][surface]
    assert not [b for b in BSNS if b in text], surface
    # Any 9-digit number in text (amounts in cents may have 9 digits: numbers are fine).
    texts = [text] if surface in ("logs", "dead-letter headers") else _QUOTED.findall(text)
    assert not [t for t in texts if _NINE.search(t)], surface


def test_dead_letter_payloads_carry_bsn_shaped_client_refs_masked(run: dict) -> None:
    letters = run["sim"].published.dead_letters
    bsn_letters = [d for d in letters if d.reason == "bsn_like_client_ref"]
    assert len(bsn_letters) >= 4  # plain, escaped, keyless copy, in a batch
    for d in letters:
        assert BSN_CLIENT.encode() not in d.payload and BSN_ESCAPED.encode() not in d.payload
        assert b"\\u0031\\u0031\\u0031" not in d.payload  # the escaped form, re-encoded
    for d in bsn_letters:
        assert orjson.loads(d.payload)["client_ref"] == "*********"


def test_bsn_shaped_identifiers_other_than_client_ref_are_accepted_but_masked_in_headers(
    run: dict,
) -> None:
    """SPEC §2 rejects only a BSN-shaped client_ref; other identifiers are the
    provider's own numbering. They stay out of headers, logs and metrics."""
    sim = run["sim"]
    owner = next(
        st
        for st in sim.engine.providers.values()
        if any(key_of("hostile-l4") in index for index in st.lines.values())
    )
    # accepted: its event id is remembered (under its service year)
    assert any(key_of(BSN_EVENT) in ids for ids in owner.events.values())
    orphan = [
        d
        for d in sim.published.dead_letters
        if d.reason == "orphan_credit" and BSN_LINE.encode() in d.payload
    ]
    assert len(orphan) == 1
    details = [h["detail"] for h in sim.published.headers if h["reason"] == b"orphan_credit"]
    assert b"credit for line ********* that was never debited" in details


def test_a_hostile_region_reaches_neither_metrics_nor_alerts() -> None:
    """A line's `region` is the provider's free text: labels and alerts take the
    region from the insurer's contract, or show none (docs/operations.md)."""
    from streams.domain.contracts import Contract
    from tests.security.test_fuzz_acceptance import valid_line

    sim = WorkerSim(POLICY, clock=lambda: 1_780_000_000.0)
    # zorgvraagtype 1 in setting 5 in 2026: the line fires zvt_setting_mismatch itself
    mismatch = valid_line(1, region=BSN_CLIENT, care_demand_type=1, setting=5)
    sim.declarations("12345678", orjson.dumps(mismatch))
    text = WorkerMetrics(sim.engine).exposition()[0].decode()
    assert BSN_CLIENT not in text
    net = [ln for ln in text.splitlines() if ln.startswith("claimwatch_provider_net_declared")]
    firing = [ln for ln in text.splitlines() if ln.startswith("claimwatch_alert_firing{")]
    assert len(net) == 1 and 'region="unknown"' in net[0]
    assert len(firing) == 1 and 'region="unknown"' in firing[0]
    (alert,) = sim.published.alerts
    assert alert["rule"] == "zvt_setting_mismatch"
    assert alert["region"] is None  # no contract: no region, as alert.v1.json allows
    assert BSN_CLIENT not in orjson.dumps(alert).decode()

    # A contract names the region (and provider, purchaser) from then on.
    sim.engine.apply_contract(
        Contract("12345678", 2026, 10_000_000, "inkoop-ggz-noord", "GGZ Test", "Twente", 1, 0.0)
    )
    text = WorkerMetrics(sim.engine).exposition()[0].decode()
    net = [ln for ln in text.splitlines() if ln.startswith("claimwatch_provider_net_declared")]
    assert len(net) == 1 and 'region="Twente"' in net[0]
    assert BSN_CLIENT not in text
