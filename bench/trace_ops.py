#!/usr/bin/env python3
"""Attribute a Kineto trace's GPU kernel time to the operators that launched the kernels.

    bench/trace_ops.py TRACE.json[.gz] STEPS [TOP]

TRACE is bench/profile_step's trace.json (without --no-trace), STEPS the number of profiled steps
(--steps). Each kernel is matched by its correlation id to the CUDA runtime / driver call that
launched it, and that call to the CPU operators open on its thread at that moment: the outermost
autograd node ("evaluate_function: XBackward0", i.e. the backward of X) or, in the forward, the
outermost aten:: operator. Prints ms per step per operator, then per (outer, innermost) pair.
"""
import collections
import gzip
import json
import signal
import sys


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, steps = sys.argv[1], float(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    opener = gzip.open if path.endswith(".gz") else open
    events = json.load(opener(path))["traceEvents"]
    launches = {e["args"]["correlation"]: e for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}
    ops = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "cpu_op":
            ops[e["tid"]].append(e)

    def open_ops(tid, ts):
        return [e for e in ops[tid] if e["ts"] <= ts <= e["ts"] + e["dur"]]

    by_outer, by_pair, total = collections.Counter(), collections.Counter(), 0.0
    for e in events:
        if e.get("cat") != "kernel":
            continue
        ms = e["dur"] / 1000.0 / steps
        total += ms
        launch = launches.get(e["args"].get("correlation"))
        stack = sorted(open_ops(launch["tid"], launch["ts"]), key=lambda o: o["ts"]) if launch else []
        names = [o["name"] for o in stack]
        outer = next((n for n in names if n.startswith("autograd::engine")), None) or \
            next((n for n in names if n.startswith("aten::")), "(no operator)")
        inner = names[-1] if names else "(no operator)"
        by_outer[outer] += ms
        by_pair[(outer, inner)] += ms
    print(f"summed kernel time {total:.3f} ms per step")
    for name, ms in by_outer.most_common(top):
        print(f"{ms:8.3f} ms {100 * ms / total:5.1f} %  {name}")
    print("\nby (outer operator, innermost operator):")
    for (outer, inner), ms in by_pair.most_common(top):
        print(f"{ms:8.3f} ms  {outer[:72]} | {inner[:56]}")


if __name__ == "__main__":
    main()
