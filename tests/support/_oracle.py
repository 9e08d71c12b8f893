"""The differential oracle's driver: one seeded random operation sequence, run against
meterhub and prometheus_client side by side in this process (and in the children it
forks), then both expositions printed as JSON ``{"meterhub": text, "prometheus": text}``.

Run as ``python _oracle.py MODE SEED OPS`` (MODE ``single`` or ``multi``; in ``multi``
both libraries' multi-process directories come from the environment, which must be set
before prometheus_client is imported: it picks its value class at import time).

Operations: declare (every metric is declared up front, the same way in both), labels
(a series created at zero), inc / set / dec / observe, remove and clear (single-process
only: prometheus_client's multi-process mode keeps a removed series in its file - an
intended difference), fork (a child runs the next few operations and exits) and kill (a
child runs them and dies by SIGKILL).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from typing import Any

import prometheus_client as pc

import meterhub as mh

LABELS = ("a", "b", "c", 'ü"\\n')
AMOUNTS = (0.0, 0.5, 1.0, 2.25, 3.0, 8.0)  # exact binary fractions: sums are exact in any order
OBSERVED = (0.25, 0.5, 0.75, 2.0, 10.0, 100.0)
BUCKETS = (0.5, 1.0, 5.0)


def _pair(multi: bool) -> tuple[dict[str, tuple[Any, Any]], Any, Any]:
    mreg = mh.Registry(self_metrics=False)
    preg = pc.CollectorRegistry()
    mode: dict[str, Any] = {"multiprocess_mode": "sum"} if multi else {}
    return (
        {
            "counter": (
                mh.Counter("o_jobs", "Jobs.", ["k"], registry=mreg),
                pc.Counter("o_jobs", "Jobs.", ["k"], registry=preg),
            ),
            "plain": (
                mh.Counter("o_plain", "Plain.", registry=mreg),
                pc.Counter("o_plain", "Plain.", registry=preg),
            ),
            "gauge": (
                mh.Gauge("o_level", "Level.", ["k"], registry=mreg, **mode),
                pc.Gauge("o_level", "Level.", ["k"], registry=preg, **mode),
            ),
            "histogram": (
                mh.Histogram("o_lat", "Latency.", ["k"], buckets=BUCKETS, registry=mreg),
                pc.Histogram("o_lat", "Latency.", ["k"], buckets=BUCKETS, registry=preg),
            ),
            "summary": (
                mh.Summary("o_size", "Size.", ["k"], registry=mreg),
                pc.Summary("o_size", "Size.", ["k"], registry=preg),
            ),
        },
        mreg,
        preg,
    )


def _ops(rng: random.Random, n: int, multi: bool) -> list[tuple[Any, ...]]:
    kinds = ["inc", "inc", "set", "dec", "observe", "observe", "labels", "fork", "kill"]
    if not multi:
        kinds += ["remove", "clear"]
    ops: list[tuple[Any, ...]] = []
    for _ in range(n):
        kind = rng.choice(kinds)
        label = rng.choice(LABELS)
        if kind == "inc":
            metric = rng.choice(["counter", "plain", "gauge"])
            ops.append(("inc", metric, label, rng.choice(AMOUNTS)))
        elif kind in ("set", "dec"):
            ops.append((kind, "gauge", label, rng.choice(AMOUNTS)))
        elif kind == "observe":
            metric = rng.choice(["histogram", "summary"])
            ops.append(("observe", metric, label, rng.choice(OBSERVED)))
        elif kind in ("labels", "remove"):
            metric = rng.choice(["counter", "gauge", "histogram", "summary"])
            ops.append((kind, metric, label))
        elif kind == "clear":
            ops.append(("clear", rng.choice(["counter", "gauge", "histogram", "summary"])))
        else:
            ops.append((kind, rng.randint(1, 4)))
    return ops


def _apply(metrics: dict[str, tuple[Any, Any]], op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "clear":
        for m in metrics[op[1]]:
            m.clear()
        return
    name, label = op[1], op[2]
    for m in metrics[name]:
        if kind == "remove":
            m.remove(label)
            continue
        target = m if name == "plain" else m.labels(label)
        if kind == "inc":
            target.inc(op[3])
        elif kind == "set":
            target.set(op[3])
        elif kind == "dec":
            target.dec(op[3])
        elif kind == "observe":
            target.observe(op[3])


def run(multi: bool, seed: int, n: int) -> dict[str, str]:
    metrics, mreg, preg = _pair(multi)
    ops = _ops(random.Random(seed), n, multi)
    i = 0
    while i < len(ops):
        op = ops[i]
        i += 1
        if op[0] not in ("fork", "kill"):
            _apply(metrics, op)
            continue
        batch, i = ops[i : i + op[1]], i + op[1]
        pid = os.fork()
        if pid == 0:  # the child: its operations reach the parent's view in multi mode only
            try:
                for child_op in batch:
                    if child_op[0] not in ("fork", "kill"):
                        _apply(metrics, child_op)
            finally:
                if op[0] == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                os._exit(0)
        os.waitpid(pid, 0)
    if multi:
        from prometheus_client import multiprocess

        preg = pc.CollectorRegistry()
        multiprocess.MultiProcessCollector(preg)
        mreg = mh.Registry(self_metrics=False)  # declares nothing: serves the directory
    return {
        "meterhub": mh.generate_latest(mreg).decode(),
        "prometheus": pc.generate_latest(preg).decode(),
    }


if __name__ == "__main__":
    mode, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(run(mode == "multi", seed, count)))
