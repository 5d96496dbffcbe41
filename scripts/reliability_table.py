"""Run the bad-input cases of ``tests/test_cli_fuzz.py`` and the hostile-input memory probes,
and print the tables of docs/reliability.md (markdown) with what was observed.

    python scripts/reliability_table.py > /tmp/reliability.md

Each case runs ``molgan.cli.main`` in this process; each memory probe runs ``molgan`` in a
fresh process and reads its peak resident memory (``ru_maxrss`` of the process tree).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from molgan.cli import main  # noqa: E402
from tests.test_cli_fuzz import CASES, fill, make_inputs  # noqa: E402


def run_case(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, err.getvalue().strip()


def case_rows(root: Path) -> list[str]:
    inputs = make_inputs(root)
    rows = ["| case | command | expected | observed | ok |", "| --- | --- | --- | --- | --- |"]
    for name, args, fragment in CASES:
        code, err = run_case(fill(args, inputs))
        ok = code == 2 and len(err.splitlines()) == 1 and fragment in err
        shown = " ".join(args).replace(str(REPO) + "/", "").replace("|", "\\|")
        observed = (err.replace(str(root), "DIR").replace(str(REPO) + "/", "")
                    .replace("|", "\\|"))
        rows.append(f"| {name} | `molgan {shown}` | 2, one line with \"{fragment}\" | {code}: "
                    f"{observed} | {'yes' if ok else 'NO'} |")
    return rows


def peak(args: list[str]) -> tuple[int, float, float]:
    """(exit status, peak RSS in MB, seconds) of ``molgan ARGS`` in a fresh process tree."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "done = subprocess.run(sys.argv[1:], capture_output=True); "
             "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
             "time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "molgan", *args],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1]) / 1024, float(out[2])


def memory_rows(root: Path) -> list[str]:
    rng = random.Random(0)
    files = {
        "two molecules": "CCO\nc1ccccc1\n",
        "one 10 MB line": "CCO\n" + "C" * 10_000_000 + "\nc1ccccc1\n",
        "100,000 lines of 200 random SMILES characters":
            "".join("".join(rng.choice("CNOc1()=") for _ in range(200)) + "\n"
                    for _ in range(100_000)),
        "100,000 chains of 200 carbons": ("C" * 200 + "\n") * 100_000,
    }
    paths = {}
    for number, (name, text) in enumerate(files.items()):
        paths[name] = root / f"hostile{number}.smi"
        paths[name].write_text(text)
    cache = str(root / "cache")
    probes = [(name, ["prepare", "--data", str(paths[name]), "--max-atoms", "9",
                      "--cache-dir", cache]) for name in files]
    probes += [
        ("one 10 MB line, no --max-atoms", ["prepare", "--data", str(paths["one 10 MB line"]),
                                            "--cache-dir", cache]),
        ("one 10 MB line, evaluate", ["evaluate", str(paths["one 10 MB line"]), "--train",
                                      str(paths["two molecules"]), "--whole", "--no-fcd",
                                      "--cache-dir", cache]),
        ("one 10 MB line, score", ["score", "pretrained", str(paths["one 10 MB line"]), "-o",
                                   str(root / "scores.csv")]),
    ]
    rows = ["| input | command | exit | peak RSS (MB) | seconds |",
            "| --- | --- | --- | --- | --- |"]
    for name, args in probes:
        code, rss, seconds = peak(args)
        shown = " ".join(a.replace(str(root), "DIR") for a in args)
        rows.append(f"| {name} | `molgan {shown}` | {code} | {rss:,.0f} | {seconds:.1f} |")
    return rows


def main_script() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        (root / "cases").mkdir()
        print("\n".join(case_rows(root / "cases")) + "\n")
        if not args.no_memory:
            print("\n".join(memory_rows(root)) + "\n")
        print(f"({time.perf_counter() - start:.0f} s; peak RSS of this script "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB)")


if __name__ == "__main__":
    main_script()
