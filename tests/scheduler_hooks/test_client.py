"""The tailcast client against the real service under uvicorn on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from scheduler_hooks.client import (
    AsyncTailcastClient,
    Forecast,
    ForecastItem,
    TailcastClient,
    TailcastHTTPError,
    TailcastUnavailableError,
)

if TYPE_CHECKING:
    from _fixtures import DEVICE, SERVED, TOKEN
    from _hook_fixtures import serving_champion
else:
    from tests.serving._fixtures import DEVICE, SERVED, TOKEN
    from tests.serving._hook_fixtures import serving_champion

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_champion(tmp_path_factory.mktemp("client"), TOKEN) as url:
        yield url


def items(n: int) -> list[ForecastItem]:
    return [
        ForecastItem(SERVED, DEVICE, request_id=f"r{i}", input_tokens=100 * (i + 1), num_running=i)
        for i in range(n)
    ]


def test_bulk_forecasts_split_into_chunks_keep_order(base_url: str) -> None:
    calls: list[httpx.Request] = []
    transport = httpx.HTTPTransport()

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            calls.append(request)
            return transport.handle_request(request)

    with TailcastClient(base_url, max_batch=2, transport=Counting()) as client:
        out = client.forecasts(items(5), quantiles=(0.5, 0.9), cdf_at=(10.0,))
        one = client.forecast(items(5)[3], quantiles=(0.5, 0.9), cdf_at=(10.0,))
    assert len(calls) == 4  # 2 + 2 + 1, then the single one
    assert [f.request_id for f in out] == ["r0", "r1", "r2", "r3", "r4"]
    # a chunk's forecasts do not depend on their neighbours (up to float rounding)
    # alone and in a chunk agree to the float32 precision of the network
    assert one.quantiles == pytest.approx(out[3].quantiles, rel=1e-6)
    assert one.request_id == "r3"
    for f in out:
        assert (f.served_model, f.model_version) == (SERVED, 1)
        assert list(f.quantiles) == [0.5, 0.9]
        assert f.levels().tolist() == [0.5, 0.9]
        assert f.values()[0] <= f.values()[1]
        assert f.cdf is not None
        assert 0.0 <= f.cdf[10.0] <= 1.0
    assert len({f.mean for f in out}) == 5  # the inputs reached the predictor


def test_errors_name_status_and_reason(base_url: str) -> None:
    with TailcastClient(base_url) as client:
        with pytest.raises(TailcastHTTPError) as unknown:
            client.forecast(ForecastItem("nope", DEVICE))
        assert unknown.value.status_code == 404
        assert "nope" in str(unknown.value)
        assert SERVED in str(unknown.value)
        with pytest.raises(TailcastHTTPError) as invalid:
            client.forecast(ForecastItem(SERVED, DEVICE, input_tokens=5, cached_tokens=9))
        assert invalid.value.status_code == 422
        assert "cached_tokens" in str(invalid.value)
        with pytest.raises(TailcastHTTPError) as level:
            client.forecast(items(1)[0], quantiles=(1.5,))
        assert level.value.status_code == 422


def test_unreachable_and_silent_servers_are_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        TailcastClient(f"http://127.0.0.1:{port}") as client,
        pytest.raises(TailcastUnavailableError, match=str(port)),
    ):
        client.forecast(items(1)[0])

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True)
    thread.start()
    try:
        with (
            TailcastClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.2) as client,
            pytest.raises(TailcastUnavailableError, match="Timeout"),
        ):
            client.forecast(items(1)[0])
    finally:
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        silent.close()


def test_async_client_matches_sync(base_url: str) -> None:
    async def ask() -> list[Forecast]:
        async with AsyncTailcastClient(base_url, max_batch=3) as client:
            return await client.forecasts(items(4))

    got = asyncio.run(ask())
    with TailcastClient(base_url) as client:
        want = client.forecasts(items(4))
    assert [f.request_id for f in got] == [f.request_id for f in want]
    for a, b in zip(got, want, strict=True):
        assert a.quantiles == pytest.approx(b.quantiles, rel=1e-6)  # float32 network
        assert a.mean == pytest.approx(b.mean, rel=1e-6)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        TailcastClient("http://127.0.0.1:1", timeout_s=0)
    assert ForecastItem("m", "d", kv_cache_util=0.5, step=2).to_json() == {
        "served_model": "m",
        "device": "d",
        "runtime": {"kv_cache_util": 0.5},
        "step": 2,
    }
