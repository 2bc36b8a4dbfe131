"""Compare the timings of two runs of the benchmarks (two ``results`` folders).

Each JSON file present in both folders is flattened to its numeric leaves; the
leaves that are times (a key with "seconds" or "ns_per", not load averages, import
times, targets or per-run lists) are paired and printed as ``before``, ``after`` and
their ratio, marked ``<<<`` above ``--flag`` (1.10 by default). Writes the table to
``--out`` as JSON when given.

    python benchmarks/compare_results.py BEFORE_DIR AFTER_DIR [--files a.json ...]
        [--flag 1.1] [--out benchmarks/results/before_after.json]

The two folders come from running the same scripts on two checkouts (for example
``git archive REV | tar -x -C /tmp/old`` and the scripts copied in), one script at a
time and alternating, on a quiet machine.
"""

import argparse
import json
import os

SKIP = ("load", "import", "target", "_all", "warmup", "_case_seconds")


def flatten(node, prefix=""):
    """Numeric leaves of a JSON tree as ``{"/a/b": value}``."""
    out = {}
    if isinstance(node, dict):
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}/{key}"))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out[prefix] = float(node)
    return out


def is_time(key):
    leaf = key.rsplit("/", 1)[-1]
    timed = "second" in leaf or "ns_per" in leaf or leaf in ("direct", "cg")
    return timed and not any(s in key for s in SKIP)


def compare(before_dir, after_dir, files):
    rows = []
    for name in files:
        paths = [os.path.join(d, name) for d in (before_dir, after_dir)]
        if not all(os.path.exists(p) for p in paths):
            continue
        with open(paths[0]) as fa, open(paths[1]) as fb:
            a, b = flatten(json.load(fa)), flatten(json.load(fb))
        for key, after in b.items():
            before = a.get(key)
            if before is None or not is_time(key) or before <= 0:
                continue
            rows.append(
                {"file": name, "key": key, "before": before, "after": after,
                 "ratio": after / before}
            )  # fmt: skip
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--files", nargs="+", help="JSON names (default: all in both)")
    ap.add_argument("--flag", type=float, default=1.10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    files = args.files or sorted(
        set(os.listdir(args.before)) & set(os.listdir(args.after))
    )
    rows = compare(args.before, args.after, [f for f in files if f.endswith(".json")])
    for r in rows:
        mark = " <<<" if r["ratio"] > args.flag else ""
        print(
            f"{r['file']:22s} {r['key'][:70]:70s} {r['before']:10.4g} "
            f"{r['after']:10.4g} {r['ratio']:6.2f}{mark}"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"before": args.before, "after": args.after, "rows": rows}, fh,
                      indent=1)  # fmt: skip
            fh.write("\n")


if __name__ == "__main__":
    main()
