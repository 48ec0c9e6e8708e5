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

With `--model`, cachegrind also simulates the caches and the branch
predictor, and each call gets an estimated cost in cycles: instructions
+ 10 per L1 miss (code or data) + 15 per mispredicted branch + 60 per
miss of the last level, simulated as a 512 KiB, 8-way L2 (a core's own L2
on this machine's AMD EPYC). A call here executes some 190,000
instructions, client and server in one thread: its code does not fit in
L2, and code that a call touches once per call is fetched from L3 again on
the next one. The L2 term is what makes the estimate follow the measured
wall time (see BENCHMARKS.md). With `--where N`, the N
functions that differ most between each contender and its baseline are
listed, by that estimate: where the extra cost of a call goes.

With `--lines`, callgrind records each instruction's address
(`--dump-instr=yes`) and each call gets the number of 64-byte lines of code
it runs (those whose instructions run at least 0.9 times a call): the code
a call must fetch each time, as it does not stay in the core's caches
between calls. On this machine that count follows the wall-time ratios of
the steps of `generated_call` better than the estimate does (BENCHMARKS.md).
With `--where N`, the N functions whose count differs most are listed.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GROUPS = {
    "generated_call": [
        ["hand_written", "generated"],
        ["hand_written_timeout", "generated"],
        ["hand_written", "generated_untimed"],
        # The steps between them (benches/generated_call.rs).
        ["hand_written", "crate_request"],
        ["crate_request", "fetched"],
        ["hand_written_timeout", "executed"],
        ["executed", "executed_unwrapped"],
        ["executed_unwrapped", "generated"],
        ["hand_written", "hand_written_again"],
    ],
    "stacks": [
        ["reqwest/by_hand", "reqwest/middleware"],
        ["reqwest/stack_by_hand", "reqwest/middleware"],
        ["reqwest/replayable_by_hand", "reqwest/middleware"],
        ["hyper/by_hand", "hyper/tower"],
        ["hyper/replayable_by_hand", "hyper/tower"],
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


# Weights of the cost estimate of `--model`, in cycles per event.
MISS_CYCLES = 10
MISPREDICT_CYCLES = 15
L2_MISS_CYCLES = 60
L2 = "--LL=524288,8,64"


def run(binary, contender, calls, tmp, model):
    """Runs `calls` calls of `contender` under valgrind; returns its events
    per function (the total only, without `model`)."""
    out = os.path.join(tmp, f"{contender.replace('/', '_')}.{calls}.out")
    env = dict(os.environ, BENCH_CALLS=f"{contender}:{calls}")
    tool = (["--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes", L2,
             f"--cachegrind-out-file={out}"] if model
            else ["--tool=callgrind", f"--callgrind-out-file={out}"])
    result = subprocess.run(["valgrind", *tool, binary], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{contender}: {result.stderr[-2000:]}")
    if not model:
        # callgrind's file holds inclusive costs of calls too: its total is
        # the one to read.
        match = re.search(r"Collected : (\d+)", result.stderr)
        if not match:
            sys.exit(f"{contender}: no total in callgrind's output")
        return {"(total)": collections.Counter(Ir=int(match.group(1)))}
    return costs(out)


def costs(path):
    """Per function, the events of a valgrind output file: {fn: {event: n}}."""
    events, per_fn, fn = [], collections.defaultdict(collections.Counter), None
    with open(path) as lines:
        for line in lines:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line[:1].isdigit():
                fields = line.split()[1:]
                for event, value in zip(events, fields):
                    if value.lstrip("-").isdigit():
                        per_fn[fn][event] += int(value)
    return per_fn


def estimate(counts):
    """Estimated cycles of a Counter of cachegrind events."""
    return (counts["Ir"] + MISS_CYCLES * (counts["I1mr"] + counts["D1mr"] + counts["D1mw"])
            + MISPREDICT_CYCLES * (counts["Bcm"] + counts["Bim"])
            + L2_MISS_CYCLES * (counts["ILmr"] + counts["DLmr"] + counts["DLmw"]))


def run_lines(binary, contender, calls, tmp):
    """Runs `calls` calls of `contender` under callgrind with instruction
    addresses; returns {(object, address): (function, executions)}."""
    out = os.path.join(tmp, f"{contender.replace('/', '_')}.{calls}.lines")
    env = dict(os.environ, BENCH_CALLS=f"{contender}:{calls}")
    result = subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes",
                             f"--callgrind-out-file={out}", binary],
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{contender}: {result.stderr[-2000:]}")
    return addresses(out)


def addresses(path):
    """Executions per instruction address of a callgrind file written with
    `--dump-instr=yes` (positions `instr line`; a call's cost line, after
    `calls=`, is inclusive and skipped)."""
    names, counts = {}, collections.Counter()
    where, fn, obj, last, after_call = {}, None, None, 0, False

    def name(spec):
        match = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not match:
            return spec
        if match.group(2):
            names[match.group(1)] = match.group(2)
        return names.get(match.group(1), match.group(1))

    with open(path) as lines:
        for line in lines:
            if line.startswith("ob="):
                obj = line[3:].strip()
            elif line.startswith("fn="):
                fn = name(line[3:].strip())
            elif line.startswith("cfn="):
                name(line[4:].strip())
            elif line.startswith("calls="):
                after_call = True
            elif line[:1] in "0+-*":
                fields = line.split()
                position = fields[0]
                if position.startswith("0x"):
                    last = int(position, 16)
                elif position[0] in "+-":
                    step = position[1:]
                    step = int(step, 16) if step.startswith("0x") else int(step)
                    last += step if position[0] == "+" else -step
                elif position != "*":
                    continue
                if after_call:
                    after_call = False
                elif len(fields) > 2:
                    counts[(obj, last)] += int(fields[2])
                    where[(obj, last)] = fn
    return {key: (where[key], n) for key, n in counts.items()}


def lines_per_call(binary, contender, calls):
    """The lines of code one call runs, per function: {fn: set of lines}."""
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        low, high = pool.map(lambda n: run_lines(binary, contender, n, tmp),
                             [calls, 2 * calls])
    per_fn = collections.defaultdict(set)
    for key, (fn, n) in high.items():
        if n - low.get(key, (fn, 0))[1] >= 0.9 * calls:
            per_fn[fn].add((key[0], key[1] // 64))
    return per_fn


def main_lines(binary, bench, calls, where):
    per_fn = {}
    for group in GROUPS[bench]:
        for contender in group:
            if contender not in per_fn:
                per_fn[contender] = lines_per_call(binary, contender, calls)
                count = len(set().union(*per_fn[contender].values()))
                print(f"{contender:24} {count:>6} lines of code per call", flush=True)
    for baseline, contender in GROUPS[bench]:
        b = len(set().union(*per_fn[baseline].values()))
        c = len(set().union(*per_fn[contender].values()))
        print(f"{contender} / {baseline}: {c / b:.3f}x ({c - b:+d} lines)")
        if where:
            functions = set(per_fn[baseline]) | set(per_fn[contender])

            def delta(fn):
                return len(per_fn[contender].get(fn, ())) - len(per_fn[baseline].get(fn, ()))

            for fn in sorted(functions, key=lambda f: -abs(delta(f)))[:where]:
                print(f"  {delta(fn):+4d} lines  {fn[:110]}")


def per_call(binary, contender, calls, model):
    """The events of one more call, per function: (2n calls) - (n calls)."""
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        low, high = pool.map(lambda n: run(binary, contender, n, tmp, model),
                             [calls, 2 * calls])
    result = {}
    for fn in set(low) | set(high):
        diff = collections.Counter(high.get(fn, {}))
        diff.subtract(low.get(fn, {}))
        result[fn] = {event: n / calls for event, n in diff.items()}
    return result


def total(per_fn):
    counts = collections.Counter()
    for events in per_fn.values():
        counts.update(events)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", choices=sorted(GROUPS))
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--model", action="store_true",
                        help="simulate caches and branches; print estimated cycles")
    parser.add_argument("--lines", action="store_true",
                        help="count the lines of code a call runs")
    parser.add_argument("--where", type=int, default=0, metavar="N",
                        help="with --model or --lines: the N functions that differ most")
    parser.add_argument("--binary", help="a bench binary built earlier (another commit)")
    args = parser.parse_args()
    binary = args.binary or bench_binary(args.bench)
    if args.lines:
        return main_lines(binary, args.bench, args.calls, args.where)
    per_fn, totals = {}, {}
    for group in GROUPS[args.bench]:
        for contender in group:
            if contender in per_fn:
                continue
            per_fn[contender] = per_call(binary, contender, args.calls, args.model)
            totals[contender] = total(per_fn[contender])
            counts = totals[contender]
            line = f"{contender:24} {counts['Ir']:>10.0f} instructions per call"
            if args.model:
                line += (f", {counts['I1mr']:.0f} code and {counts['D1mr'] + counts['D1mw']:.0f}"
                         f" data L1 misses, {counts['ILmr']:.0f} code and"
                         f" {counts['DLmr'] + counts['DLmw']:.0f} data L2 misses,"
                         f" {counts['Bcm'] + counts['Bim']:.0f} mispredicts,"
                         f" ~{estimate(counts):.0f} cycles")
            print(line, flush=True)
    for baseline, contender in GROUPS[args.bench]:
        b, c = totals[baseline], totals[contender]
        print(f"{contender} / {baseline}: {c['Ir'] / b['Ir']:.3f}x "
              f"({c['Ir'] - b['Ir']:+.0f} instructions)", end="")
        if args.model:
            print(f"; estimated cycles {estimate(c) / estimate(b):.3f}x "
                  f"({estimate(c) - estimate(b):+.0f})", end="")
        print()
        if args.model and args.where:
            functions = set(per_fn[baseline]) | set(per_fn[contender])

            def delta(fn):
                extra = collections.Counter(per_fn[contender].get(fn, {}))
                extra.subtract(per_fn[baseline].get(fn, {}))
                return extra

            deltas = {fn: delta(fn) for fn in functions}
            for fn in sorted(functions, key=lambda f: -abs(estimate(deltas[f])))[:args.where]:
                d = deltas[fn]
                print(f"  {estimate(d):+8.0f} cycles {d['Ir']:+7.0f} instr "
                      f"{d['I1mr'] + d['D1mr'] + d['D1mw']:+5.0f} L1 "
                      f"{d['ILmr'] + d['DLmr'] + d['DLmw']:+5.0f} L2 misses  {fn[:100]}")


if __name__ == "__main__":
    main()
