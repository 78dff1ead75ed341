"""The ``openai`` backend against a loopback server of fixed latency, played by the local
executor, by Ray with 1 worker and by Ray with 2 workers (``run.executor: ray``).

The server and the manifest are those of ``api_concurrency.py``: N questions, every answer
after L seconds, ``max_concurrency`` C, the cache off. The backend's C is a limit of the
server, so on Ray it is shared by all workers (one limiter actor): more workers must not make
the server see more than C requests at once, and the best any executor can do is N*L/C. The
figures show what Ray costs on top: connecting, starting the worker actors (each imports
harness and builds the backend), the limiter's round trip per request, streaming the records.

Ray runs connect to one ``ray start --head`` cluster started here (2 CPUs, loopback, no
dashboard) and stopped at the end; ``--own-ray`` lets each run start and stop a local Ray of
its own instead (``run.ray.address: null``), which adds Ray's start-up to the wall time.

    python benchmarks/ray_api.py [--samples 256] [--latency 0.2] [--concurrency 16] [--own-ray]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from api_concurrency import harness_command
from api_concurrency import timed
from common import add_json_option
from common import write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fault_server import FaultServer

RAY = str(Path(sys.executable).with_name("ray"))
VARIANTS = [("local", None), ("ray, 1 worker", 1), ("ray, 2 workers", 2)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_cluster(folder: Path, env: dict[str, str]) -> str:
    """A two-CPU head on loopback; its address."""
    port = free_port()
    command = [RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0"]
    command += ["--node-ip-address=127.0.0.1", "--include-dashboard=false"]
    command += [f"--temp-dir={folder}"]
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=120)
    return f"127.0.0.1:{port}"


def variant_command(base: list[str], workers: int | None, address: str | None) -> list[str]:
    """``harness run`` as ``api_concurrency.py`` builds it, on the executor asked for."""
    if workers is None:
        return base
    sets = ["--executor", "ray", "--set", f"run.ray.workers={workers}"]
    return base + sets + (["--ray-address", address] if address else [])


def measure(args: argparse.Namespace, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Each variant once on N samples, after a 1-sample run that measures its fixed cost."""
    folder, server, env, address = ctx["folder"], ctx["server"], ctx["env"], ctx["address"]
    rows = []
    for name, workers in VARIANTS:
        tag = name.replace(" ", "").replace(",", "-")
        one = harness_command(folder, server.base_url, 1, args.concurrency, f"one-{tag}")
        fixed = max(timed(server, variant_command(one, workers, address), env)[0] - args.latency, 0)
        full = harness_command(folder, server.base_url, args.samples, args.concurrency, tag)
        server.max_in_flight = 0  # nothing is in flight between two runs
        wall, span = timed(server, variant_command(full, workers, address), env)
        peak, requests = server.max_in_flight, server.total_requests
        rows.append(
            {"name": name, "wall": wall, "fixed": fixed, "server": span, "peak": peak}
            | {"requests": requests}
        )
    return rows


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    ideal = args.samples * args.latency / args.concurrency
    print(
        f"N={args.samples} samples, latency L={args.latency}s, max_concurrency C="
        f"{args.concurrency}: ideal N*L/C = {ideal:.2f}s"
    )
    print(
        f"{'executor':16} {'wall s':>8} {'fixed s':>8} {'server s':>9} {'peak':>5} "
        f"{'requests':>9} {'wall/local':>11} {'server/ideal':>13}"
    )
    local = rows[0]["wall"]
    for r in rows:
        print(
            f"{r['name']:16} {r['wall']:8.2f} {r['fixed']:8.2f} {r['server']:9.2f} "
            f"{r['peak']:5d} {r['requests']:9d} {r['wall'] / local:11.2f} "
            f"{r['server'] / ideal:13.3f}"
        )
    write_json(args, {"ideal_s": ideal, "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--own-ray", action="store_true", help="each run starts its own Ray")
    add_json_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rb", dir="/tmp") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "HARNESS_CACHE_DIR": str(folder / "cache")}
        env |= {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        address = None if args.own_ray else start_cluster(folder / "ray", env)
        try:
            with FaultServer(latency=args.latency) as server:
                ctx = {"folder": folder, "server": server, "env": env, "address": address}
                rows = measure(args, ctx)
        finally:
            if address:
                subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env)
    report(rows, args)


if __name__ == "__main__":
    main()
