"""How many create-version requests per second the emulator sustains on loopback.

Not a test: a measurement for the docs. By default the emulator runs as the real CLI in a child
process (so client and server do not share a core), and N creates are sent with C concurrent
aiohttp requests. ``--in-process`` serves it on the benchmark's own event loop instead.

    .venv/bin/python benchmarks/bench_emulator.py --creates 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import structlog

from batchsubmit.emulator import DEFAULT_PROJECT_ID, EmulatorConfig, run_emulator

BODY = json.dumps(
    {
        "config": {
            "worker_server_num": 1,
            "app_url": "/bucket/code/",
            "boot_file_url": "/bucket/code/train.py",
            "parameter": [{"label": "lr", "value": "0.01"}],
            "data_url": "/bucket/data/",
            "spec_id": 1,
            "engine_id": 1,
            "train_url": "/bucket/output/",
            "pre_version_id": 20,
        }
    }
).encode()


@asynccontextmanager
async def emulator_url(in_process: bool) -> AsyncIterator[str]:
    """Base URL of an emulator that lives for the block: a child process, or this loop."""
    if in_process:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        async with run_emulator(EmulatorConfig()) as emu:
            yield emu.url
        return
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "batchsubmit", "emulator", "--port", "0"),
        *("--log-level", "warning"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        yield line.decode().rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        await process.wait()


async def bench(creates: int, concurrency: int, in_process: bool) -> None:
    """Send ``creates`` creates through ``concurrency`` workers; print the sustained rate."""
    async with emulator_url(in_process) as base:
        url = f"{base}/v1/{DEFAULT_PROJECT_ID}/training-jobs/10/versions"
        headers = {"Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for index in range(creates):
                queue.put_nowait(index)
            failures = 0

            async def worker() -> None:
                nonlocal failures
                while not queue.empty():
                    queue.get_nowait()
                    async with session.post(url, data=BODY, headers=headers) as response:
                        await response.read()
                        failures += response.status != 200

            for _ in range(concurrency):  # warm the connection pool and the server
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
            started = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                for _ in range(concurrency):
                    group.create_task(worker())
            elapsed = time.perf_counter() - started
    where = "in-process" if in_process else "child process"
    print(
        f"{creates} creates, {concurrency} concurrent, emulator in {where}: "
        f"{elapsed:.2f} s, {creates / elapsed:,.0f} creates/s, "
        f"mean {elapsed / creates * concurrency * 1000:.1f} ms/request, {failures} failures"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--in-process", action="store_true", help="serve on this event loop")
    args = parser.parse_args()
    asyncio.run(bench(args.creates, args.concurrency, args.in_process))


if __name__ == "__main__":
    main()
