"""HTTP benchmark: submit-and-wait throughput and latency over loopback.

Run: ``python benchmarks/bench_http.py [--seconds 5] [--clients 1,16,64]``

The service runs in its own process (``serve()``, uvicorn, one event loop) with an
``async def`` echo processor; the load generator is an httpx.AsyncClient in this process
with one connection per client. Each client loops: ``POST /tasks`` then
``GET /tasks/{id}/wait``, and the pair is one operation. Prints a Markdown table
(operations per second, p50 and p99 latency in milliseconds) for docs/service.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "bench-token-0123456789abcdef"


async def echo(task: Any) -> Any:
    """The processor the service runs (loaded as ``bench_http:echo``)."""
    return task.payload


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    config = workdir / "bench.toml"
    config.write_text(
        f"[service]\nport = {port}\nrate_limit = 0\n"
        '[service.processors]\necho = "bench_http:echo"\n'
        "[processor]\nmax_workers = 64\nmax_process_workers = 0\nbuiltin_processors = false\n"
    )
    code = (
        "import logging; logging.basicConfig(level=logging.WARNING); "
        "from async_processor.service import ServiceConfig, serve; "
        f"serve(ServiceConfig.load({str(config)!r}))"
    )
    env = {
        **os.environ,
        "ASYNC_PROCESSOR_API_TOKENS": f"bench:{TOKEN}",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL)


async def wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the service did not start")


async def run_level(base: str, clients: int, seconds: float) -> dict[str, float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:
        await wait_ready(client)
        stop = time.perf_counter() + seconds

        async def one_client() -> None:
            body = {"task_type": "echo", "payload": {"text": "hello bear"}}
            while time.perf_counter() < stop:
                started = time.perf_counter()
                submitted = await client.post("/tasks", json=body)
                task_id = submitted.json()["id"]
                done = await client.get(f"/tasks/{task_id}/wait", params={"timeout": 30})
                assert done.json()["status"] == "completed", done.text
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "ops": len(ordered),
        "ops_per_s": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


async def main(levels: list[int], seconds: float) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(port, Path(workdir))
        try:
            base = f"http://127.0.0.1:{port}"
            await run_level(base, 4, 1.0)  # warm up
            rows = [await run_level(base, n, seconds) for n in levels]
        finally:
            server.terminate()
            server.wait(30)
    print("| clients | submit+wait ops/s | p50 ms | p99 ms | operations |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['clients']} | {row['ops_per_s']:.0f} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.2f} | {row['ops']} |"
        )
    print(f"\nserver exit code after SIGTERM: {server.returncode}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated levels")
    options = parser.parse_args()
    asyncio.run(main([int(n) for n in options.clients.split(",")], options.seconds))
