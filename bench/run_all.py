"""`make bench`: run every benchmark, then print one table (BooChat, direct, ratio, target) and write
it as JSON to bench/results/latest.json. Each benchmark also prints its own details as it runs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import STACK

HERE = Path(__file__).resolve().parent
# The concurrent streams twice: started at once (`make bench` STREAMS, RAMP), and chat sends arriving
# steadily, 200 a second for 5 s.
BENCHMARKS = ["picker_render.py", "models_api.py", "tool_calls.py", "chat_relay.py", "answer_streams.py", "gateway.py", "agent_apis.py", "gateway_usage.py", "pools.py", "fleet.py", "streams_load.py", "sustained"]


def main() -> int:
    out = Path(tempfile.mkstemp(prefix="boochat-bench-", suffix=".jsonl")[1])
    failed = []
    for script in BENCHMARKS:
        print(f"\n== {script}", flush=True)
        arguments = sys.argv[1:] if script == "streams_load.py" else []  # --streams N ...
        if script == "sustained":
            rounds = sys.argv[sys.argv.index("--rounds"):][:2] if "--rounds" in sys.argv else []
            script, arguments = "streams_load.py", ["--streams", "1000", "--ramp", "5", *rounds]
        result = subprocess.run([sys.executable, str(HERE / script), *arguments],
                                env={**os.environ, "BOOCHAT_BENCH_OUT": str(out)})
        if result.returncode:
            failed.append(script)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    print(f"\n== summary (app: {STACK})")
    name_width = max([len("benchmark")] + [len(r["benchmark"]) for r in rows]) + 2
    figure_width = max([len("figure")] + [len(r["figure"]) for r in rows]) + 2
    print(f"  {'benchmark':{name_width}}{'figure':{figure_width}}{'BooChat':>14}{'direct':>12}{'ratio':>10}  target")
    for r in rows:
        boochat = f"{r['boochat']:.1f} {r['unit']}".strip()
        direct = f"{r['direct']:.1f}" if r["direct"] is not None else "-"
        ratio = f"{r['boochat'] / r['direct']:.2f}x" if r["direct"] else "-"
        verdict = {True: "met", False: "NOT met", None: ""}[r["met"]]
        print(f"  {r['benchmark']:{name_width}}{r['figure']:{figure_width}}{boochat:>14}{direct:>12}{ratio:>10}"
              f"  {r['target']} {verdict}")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "python": platform.python_version(), "app": STACK, "figures": rows, "failed": failed}
    (results / "latest.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {results / 'latest.json'}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
