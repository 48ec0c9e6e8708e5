#!/usr/bin/env python3
"""Compile cost of 200 declared endpoints against `derive(Serialize)`.

Generates two throw-away crates in a temporary directory, both depending on
this workspace's runtime by path (so the dependency graph is the same and
already built):

- `endpoints`: 200 `#[refresh_endpoint]` structs;
- `serialize`: the same 200 structs with `#[derive(Serialize)]` only.

Then, for each crate in turn (interleaved), touches `src/lib.rs` and times
`cargo check`, in two ways:

- `incremental`: as `cargo check` runs by default, after a `touch`: rustc
  reuses most of its previous work (what an IDE's check on save costs when
  the file did not change);
- `full`: with `CARGO_INCREMENTAL=0`: the crate is checked from scratch
  (what editing the file costs, and what CI pays);

and prints the median of the runs of each and the ratios.

    python3 benches/compile_cost.py [--runs 7] [--endpoints 200] [--time-passes]

`--time-passes` also prints rustc's `-Ztime-passes` for each crate, checked
from scratch (`CARGO_INCREMENTAL=0 RUSTC_BOOTSTRAP=1 cargo rustc --profile
check -- -Ztime-passes`), the passes over 0.02 s.
The crates share a target directory per mode under the temporary directory,
so the first check of each builds the runtime and its dependencies (not
timed).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def struct_body(i):
    # A mix of the shapes the providers use: a JSON body with the refresh
    # token, a form body, a bearer refresh with no body, a path parameter
    # and a query parameter.
    kind = i % 4
    if kind == 0:
        attr = f'path = "/v1/e{i}/refresh", auth = body, envelope = code_msg_data, response = Tokens'
        fields = "    #[refresh_token]\n    pub refresh_token: Secret,\n    pub client_id: String,\n"
    elif kind == 1:
        attr = f'path = "/v1/e{i}/token", body = form, auth = body, envelope = oauth2, response = Tokens'
        fields = "    #[refresh_token]\n    pub refresh_token: Secret,\n    pub scope: Option<String>,\n"
    elif kind == 2:
        attr = f'path = "/xrpc/e{i}.refresh", auth = refresh_bearer, envelope = xrpc, response = Tokens'
        fields = None
    else:
        attr = f'path = "/v1/e{i}/sessions/{{id}}/tokens", response = Tokens'
        fields = "    #[path]\n    pub id: String,\n    #[query]\n    pub expires_in_seconds: Option<u32>,\n    pub token: String,\n"
    return attr, fields


def strip_roles(fields):
    return "\n".join(
        line for line in fields.splitlines() if not line.strip().startswith("#[")
    ) + "\n"


def generate(n):
    head = (
        "#![allow(dead_code)]\n"
        "use refresh_endpoint::Secret;\n"
        "use refresh_endpoint::__private::serde::{Deserialize, Serialize};\n\n"
        "#[derive(Debug, Deserialize)]\n"
        "#[serde(crate = \"refresh_endpoint::__private::serde\")]\n"
        "pub struct Tokens {\n    pub access_token: Secret,\n    pub refresh_token: Option<Secret>,\n}\n\n"
    )
    endpoints = [head.replace("use refresh_endpoint::__private::serde::{Deserialize, Serialize};",
                              "use refresh_endpoint::__private::serde::Deserialize;\nuse refresh_endpoint::refresh_endpoint;")]
    serialize = [head]
    for i in range(n):
        attr, fields = struct_body(i)
        if fields is None:
            endpoints.append(f"#[refresh_endpoint({attr})]\npub struct E{i};\n\n")
            serialize.append(
                "#[derive(Serialize)]\n#[serde(crate = \"refresh_endpoint::__private::serde\")]\n"
                f"pub struct E{i};\n\n"
            )
        else:
            endpoints.append(f"#[refresh_endpoint({attr})]\npub struct E{i} {{\n{fields}}}\n\n")
            serialize.append(
                "#[derive(Serialize)]\n#[serde(crate = \"refresh_endpoint::__private::serde\")]\n"
                f"pub struct E{i} {{\n{strip_roles(fields)}}}\n\n"
            )
    return "".join(endpoints), "".join(serialize)


def write_crate(base, name, source, runtime):
    path = os.path.join(base, name)
    os.makedirs(os.path.join(path, "src"), exist_ok=True)
    with open(os.path.join(path, "Cargo.toml"), "w") as f:
        f.write(
            f'[package]\nname = "{name}"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n'
            f'[dependencies]\nrefresh-endpoint = {{ path = "{runtime}" }}\n\n'
            "[workspace]\n"
        )
    with open(os.path.join(path, "src", "lib.rs"), "w") as f:
        f.write(source)
    return path


def check(path, env, target, incremental=True):
    os.utime(os.path.join(path, "src", "lib.rs"))
    # One target directory per mode: the setting is part of cargo's
    # fingerprint of the runtime, which would otherwise be rebuilt.
    mode = "incremental" if incremental else "full"
    env = dict(env, CARGO_INCREMENTAL="1" if incremental else "0",
               CARGO_TARGET_DIR=os.path.join(target, mode))
    start = time.perf_counter()
    subprocess.run(["cargo", "check", "-q", "--offline"], cwd=path, env=env, check=True)
    return time.perf_counter() - start


def time_passes(path, env, target):
    os.utime(os.path.join(path, "src", "lib.rs"))
    env = dict(env, RUSTC_BOOTSTRAP="1", CARGO_INCREMENTAL="0",
               CARGO_TARGET_DIR=os.path.join(target, "full"))
    out = subprocess.run(
        ["cargo", "rustc", "-q", "--offline", "--profile", "check", "--", "-Ztime-passes"],
        cwd=path, env=env, capture_output=True, text=True,
    )
    for line in (out.stdout + out.stderr).splitlines():
        parts = line.split()
        if line.startswith("time:") and len(parts) >= 3:
            try:
                if float(parts[1].rstrip(";")) >= 0.02:
                    print("   ", line)
            except ValueError:
                pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--time-passes", action="store_true")
    parser.add_argument("--keep", help="generate into this directory and keep it")
    parser.add_argument("--runtime", default=os.path.join(ROOT, "runtime"),
                        help="the runtime crate to depend on (default: this workspace's)")
    parser.add_argument("--target-dir",
                        help="where to build (default: in the generated directory); "
                        "reuse one to compare two versions without rebuilding dependencies")
    args = parser.parse_args()

    base = args.keep or tempfile.mkdtemp(prefix="compile-cost-")
    os.makedirs(base, exist_ok=True)
    env = dict(os.environ)
    endpoints_src, serialize_src = generate(args.endpoints)
    runtime = os.path.abspath(args.runtime)
    target = os.path.abspath(args.target_dir or os.path.join(base, "target"))
    endpoints = write_crate(base, "endpoints", endpoints_src, runtime)
    serialize = write_crate(base, "serialize", serialize_src, runtime)

    # Untimed: builds the dependencies and warms the caches.
    for path in (endpoints, serialize):
        check(path, env, target)
        check(path, env, target, incremental=False)

    n = args.endpoints
    for mode, incremental in (("incremental", True), ("full (CARGO_INCREMENTAL=0)", False)):
        times = {endpoints: [], serialize: []}
        for _ in range(args.runs):
            for path in (endpoints, serialize):
                times[path].append(check(path, env, target, incremental))
        e = statistics.median(times[endpoints])
        s = statistics.median(times[serialize])
        print(f"cargo check after touch, {mode}, median of {args.runs} runs, {n} structs:")
        print(f"  #[refresh_endpoint]   {e:.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times[endpoints])})")
        print(f"  #[derive(Serialize)]  {s:.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times[serialize])})")
        print(f"  ratio                 {e / s:.2f}x")
    if args.time_passes:
        for name, path in (("refresh_endpoint", endpoints), ("derive(Serialize)", serialize)):
            print(f"-Ztime-passes, {name} (passes >= 0.02 s):")
            time_passes(path, env, target)
    if not args.keep:
        print(f"(generated in {base}; remove it when done)", file=sys.stderr)


if __name__ == "__main__":
    main()
