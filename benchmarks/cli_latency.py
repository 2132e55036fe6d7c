"""Catalogue commands must answer in well under a second and in less than half the time of
`import torch`. Median wall time of whole processes, as a user meets them.

    .venv/bin/python benchmarks/cli_latency.py [--repeat 7]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "deepatlas list": ["deepatlas", "list"],
    "deepatlas show resnet": ["deepatlas", "show", "resnet"],
    "deepatlas plan": ["deepatlas", "plan"],
    "deepatlas search attention": ["deepatlas", "search", "attention"],
}


def median_seconds(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    exe = shutil.which("deepatlas") or str(__import__("pathlib").Path(sys.executable).with_name("deepatlas"))
    results = {}
    for name, argv in COMMANDS.items():
        argv = [exe, *argv[1:]] if argv[0] == "deepatlas" else argv
        results[name] = median_seconds(argv, args.repeat)
        print(f"{name:28s} {results[name] * 1000:7.0f} ms", flush=True)
    ratio = results["deepatlas list"] / results["import torch"]
    print(f"list / import torch = {ratio:.2f} (must be < 0.5)")
    print(json.dumps({k: round(v, 4) for k, v in results.items()} | {"ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
