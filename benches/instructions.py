#!/usr/bin/env python3
"""Instructions per call of the contenders of a bench, counted by callgrind.

Wall time on a shared 2-core machine moves by more than the 2 % that the
goals of `generated_call` and `stacks` are about; an instruction count does
not move with the load. For each contender this runs the release bench
binary in its fixed-count mode (`BENCH_CALLS=<contender>:<n>`) under
`valgrind --tool=callgrind` twice, with `n` and `2n` calls, and divides the
difference of the totals by `n`: what one more call costs, the server's side
included (both contenders talk to the same loopback server), setup and
warm-up cancelled out.

    python3 benches/instructions.py generated_call
    python3 benches/instructions.py stacks [--calls 2000]

Prints instructions per call, and each contender's ratio to the baseline
named first in its group.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GROUPS = {
    "generated_call": [["hand_written", "generated"], ["hand_written_timeout", "generated"]],
    "stacks": [
        ["reqwest/by_hand", "reqwest/middleware"],
        ["reqwest/stack_by_hand", "reqwest/middleware"],
        ["hyper/by_hand", "hyper/tower"],
    ],
}


def bench_binary(bench):
    out = subprocess.run(
        ["cargo", "bench", "-p", "refresh-endpoint-tests", "--bench", bench,
         "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable") \
                and message["target"]["name"] == bench:
            return message["executable"]
    sys.exit(f"no executable for bench {bench}")


def instructions(binary, contender, calls):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ, BENCH_CALLS=f"{contender}:{calls}")
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary],
            env=env, capture_output=True, text=True,
        )
        if result.returncode != 0:
            sys.exit(f"{contender}: {result.stderr[-2000:]}")
        match = re.search(r"Collected : (\d+)", result.stderr)
        if not match:
            sys.exit(f"{contender}: no total in callgrind's output")
        return int(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", choices=sorted(GROUPS))
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    binary = bench_binary(args.bench)
    per_call = {}
    for group in GROUPS[args.bench]:
        for contender in group:
            if contender in per_call:
                continue
            low = instructions(binary, contender, args.calls)
            high = instructions(binary, contender, 2 * args.calls)
            per_call[contender] = (high - low) / args.calls
            print(f"{contender:24} {per_call[contender]:>10.0f} instructions per call", flush=True)
    for baseline, contender, *_ in GROUPS[args.bench]:
        ratio = per_call[contender] / per_call[baseline]
        extra = per_call[contender] - per_call[baseline]
        print(f"{contender} / {baseline}: {ratio:.3f}x ({extra:+.0f} instructions)")


if __name__ == "__main__":
    main()
