"""The portal service on the embedded broker: three followers, one web server."""

from __future__ import annotations

import asyncio
import urllib.request

import orjson
import pytest

from streams.portal.run import PortalService
from streams.portal.settings import PortalSettings
from tests.portal.conftest import produce
from tests.portal.test_model import alert, status

pytestmark = [pytest.mark.broker]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_service_serves_what_the_topics_hold_once_ready(broker, policy) -> None:
    produce(
        broker.broker, broker.topic_provider_status, [(b"12345678:2026", orjson.dumps(status()))]
    )
    produce(broker.broker, broker.topic_alerts, [(b"12345678", alert())])

    async def run() -> None:
        service = PortalService(PortalSettings(kafka=broker, port=0, bind="127.0.0.1"), policy)
        await service.start()
        try:
            assert await service.wait_ready(60)
            base = service.address.rstrip("/")
            code, body = await asyncio.to_thread(get, f"{base}/ready")
            assert code == 200 and orjson.loads(body)["ready"]
            code, body = await asyncio.to_thread(get, f"{base}/api/overview")
            rows = orjson.loads(body)["providers"]
            assert [r["agb"] for r in rows] == ["12345678"]
            assert rows[0]["open_alerts"]["warning"] == 1
            code, _ = await asyncio.to_thread(get, f"{base}/providers/12345678")
            assert code == 200
            status_ = orjson.loads((await asyncio.to_thread(get, f"{base}/api/status"))[1])
            assert set(status_["topics"]) == {"provider-status", "alerts", "departments"}
        finally:
            await service.stop()

    asyncio.run(run())
