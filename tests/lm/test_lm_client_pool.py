"""Per-loop SDK client pools: reuse under light load, more clients under heavy load."""

from __future__ import annotations

import asyncio

from rlm_engine.lm.client_pool import ClientPool


class FakeClient:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False


class Factory:
    def __init__(self) -> None:
        self.made: list[FakeClient] = []

    def __call__(self) -> FakeClient:
        client = FakeClient(len(self.made))
        self.made.append(client)
        return client


async def close(client: FakeClient) -> None:
    client.closed = True


async def test_sequential_leases_reuse_one_client() -> None:
    factory = Factory()
    pool = ClientPool(factory, close, per_client=2)
    for _ in range(5):
        async with pool.lease() as client:
            assert client is factory.made[0]
    assert pool.open_clients() == 1


async def test_concurrent_leases_spread_up_to_the_maximum() -> None:
    factory = Factory()
    pool = ClientPool(factory, close, per_client=2, max_clients=3)
    gate = asyncio.Event()
    used: list[int] = []

    async def hold() -> None:
        async with pool.lease() as client:
            used.append(client.number)
            await gate.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(10)]
    while len(used) < 10:
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)

    assert len(factory.made) == 3
    assert sorted(set(used)) == [0, 1, 2]
    await pool.aclose()
    assert all(client.closed for client in factory.made)
    assert pool.open_clients() == 0


def test_each_event_loop_gets_its_own_client() -> None:
    factory = Factory()
    pool = ClientPool(factory, close)

    async def use() -> int:
        async with pool.lease() as client:
            return client.number

    assert asyncio.run(use()) == 0
    assert asyncio.run(use()) == 1


async def test_fixed_client_is_used_and_not_closed() -> None:
    fixed = FakeClient(99)
    pool = ClientPool(Factory(), close, fixed=fixed)
    async with pool.lease() as client:
        assert client is fixed
    await pool.aclose()
    assert not fixed.closed
