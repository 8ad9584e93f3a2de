"""What the prediction log costs on the serving path: `shipyard serve` with the log on vs off.

Same machinery and method as bench_serve.py (whose helpers this imports): the iris champion trained
into a temporary store; the server pinned to core 0, wrk (-t1 -c16) to core 1; single-row
`dataframe_split` bodies on POST /invocations; the two configurations alternate within each
repetition, each started fresh, with one discarded warm-up; the ratio is computed per repetition.
Aim (issue #4): logging costs under 10% of requests/s.

Run from the repo root: ``.venv/bin/python benchmarks/serve/bench_log_cost.py --repeats 3``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_serve as bs
from harness import benchmark_parser


def main() -> int:
    parser = benchmark_parser(__doc__, repeats=3, cpu=None)
    parser.add_argument("--duration", type=int, default=10, help="Seconds per measured wrk run.")
    own = parser.parse_args()
    args = bs.parse_args(["--duration", str(own.duration)])
    env = bs.child_env(dict(__import__("os").environ))
    pin, _ = bs.pin_prefix(args.server_cpu, not own.no_pin)
    wrk_pin, _ = bs.pin_prefix(args.client_cpu, not own.no_pin)
    with tempfile.TemporaryDirectory(prefix="shipyard-logcost-") as tmp:
        home = Path(tmp)
        bs.train_store(args, home, env)
        body = bs.make_bodies(home, 0)["single"]

        def spec(log: bool) -> bs.ServerSpec:
            extra = {
                "SHIPYARD_HOME": str(home),
                "SHIPYARD_RELOAD_INTERVAL_SECONDS": "0",
                "SHIPYARD_PREDICTION_LOG": "true" if log else "false",
                "SHIPYARD_PREDICTION_LOG_PATH": str(home / "predictions.db"),
            }
            name = "log-on" if log else "log-off"

            def command(port: int) -> list[str]:
                return [
                    args.shipyard,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--models",
                    "iris",
                    "--no-auth",
                ]

            return bs.ServerSpec(name, name, command, extra)

        results: dict[str, list[bs.WrkResult]] = {"log-off": [], "log-on": []}
        for rep in range(own.repeats):
            order = [False, True] if rep % 2 == 0 else [True, False]
            for log in order:
                server = bs.start(spec(log), home, env, pin, home, f"rep{rep}")
                try:
                    bs.wait_ready(server, body.read_bytes(), time.perf_counter(), 120)
                    bs.run_wrk(args, server.port, body, 3, wrk_pin, env)  # warm-up, discarded
                    result = bs.run_wrk(args, server.port, body, own.duration, wrk_pin, env)
                finally:
                    bs.stop(server)
                results[server.spec.name].append(result)
                print(
                    f"rep {rep + 1} {server.spec.name}: {result.rps:,.0f} req/s p99 {result.p99_ms:.2f} ms",
                    file=sys.stderr,
                )
    ratios = [on.rps / off.rps for on, off in zip(results["log-on"], results["log-off"], strict=True)]
    print("| configuration | req/s median (min–max) | p99 ms median |")
    print("|---|---:|---:|")
    for name, runs in results.items():
        rps = [r.rps for r in runs]
        spread = f"{statistics.median(rps):,.0f} ({min(rps):,.0f}–{max(rps):,.0f})"
        p99 = statistics.median(r.p99_ms for r in runs)
        print(f"| shipyard serve, prediction log {name[4:]} | {spread} | {p99:.2f} |")
    cost = 1 - statistics.median(ratios)
    print(
        f"\nlog on / log off req/s, per repetition: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}); cost {cost:.1%}; "
        f"aim under 10%: {'met' if cost < 0.10 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
