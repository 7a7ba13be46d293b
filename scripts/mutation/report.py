"""Kill rate per folder and the list of surviving mutants, from the mutmut 2 caches that
scripts/mutation.sh leaves in its work copies. Survivors listed in docs/mutation/equivalent.tsv
(file, the mutated line as mutmut writes it, why it cannot change behaviour) are counted apart:

    kill rate = killed / (killed + survived - equivalent)

Timeouts (mutmut's limit, 10x the baseline run) are counted apart, not as killed: on a busy machine
a slow run is not evidence of a caught bug. "UI text" are lines not mutated (see
mutmut_config.py); "not sampled" are mutants left out by EACPS_MUTATION_SAMPLE; "not run" are
mutants a bounded run did not reach.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
from collections import Counter
from pathlib import Path

KILLED = {"ok_killed", "ok_suspicious"}
TARGETS = {"search": 0.90, "nodes": 0.90, "verifiers": 0.80}


def load_equivalents(path: Path) -> dict[tuple[str, str], str]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                file, mutated, reason = line.split("\t", 2)
                out[(file, mutated.strip())] = reason
    return out


def mutated_line(work: Path, mutant_id: int) -> tuple[str, str]:
    """(original line, mutated line) of one mutant, as mutmut itself applies it."""
    from mutmut.cache import get_unified_diff

    here = os.getcwd()
    os.chdir(work)  # mutmut reads its cache and the source relative to the work copy
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            diff = get_unified_diff(mutant_id, [], update_cache=False)
    finally:
        os.chdir(here)
    minus = [ln[1:] for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return " | ".join(s.strip() for s in minus), " | ".join(s.strip() for s in plus) or "(line removed)"


def folder_results(work: Path, equivalents: dict) -> dict:
    db = work / ".mutmut-cache"
    if not db.exists():
        return {}
    sys.path.insert(0, str(work))
    import mutmut_config

    rows = sqlite3.connect(db).execute(
        "SELECT m.id, m.status, s.filename, l.line_number, l.line, m.'index' FROM mutant m JOIN line l ON m.line = l.id "
        "JOIN sourcefile s ON l.sourcefile = s.id ORDER BY s.filename, l.line_number, m.'index'").fetchall()
    counts, survivors = Counter(), []
    for mid, status, filename, line_number, line, _index in rows:
        if status == "skipped":
            counts["UI text" if mutmut_config.UI_TEXT.search(line) else "not sampled"] += 1
            continue
        if status == "bad_survived":
            before, after = mutated_line(work, mid)
            reason = equivalents.get((filename, after))
            counts["equivalent" if reason else "survived"] += 1
            survivors.append((filename, line_number + 1, before, after, reason))
        elif status in KILLED:
            counts["killed"] += 1
        elif status == "bad_timeout":
            counts["timeout"] += 1
        else:
            counts["not run"] += 1
    return {"counts": counts, "survivors": survivors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("folders", nargs="+")
    opts = parser.parse_args()
    equivalents = load_equivalents(opts.out / "equivalent.tsv")
    summary = ["| folder | mutants | killed | survived | equivalent | UI text | not sampled | timeout | not run | kill rate | target |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
    listing = []
    for folder in opts.folders:
        res = folder_results(opts.work / folder, equivalents)
        if not res:
            print(f"{folder}/: no results (run ./scripts/mutation.sh {folder})")
            continue
        c = res["counts"]
        tested = c["killed"] + c["survived"]
        rate = c["killed"] / tested if tested else float("nan")
        total = sum(c.values())
        line = (f"{folder}/: {c['killed']} killed, {c['survived']} survived, {c['equivalent']} equivalent, "
                f"{c['UI text']} UI text, {c['not sampled']} not sampled, {c['timeout']} timeout, {c['not run']} not run "
                f"of {total}: "
                f"kill rate {rate:.1%} "
                f"(target {TARGETS[folder]:.0%})")
        print(line)
        summary.append(f"| {folder}/ | {total} | {c['killed']} | {c['survived']} | {c['equivalent']} | {c['UI text']} | "
                       f"{c['not sampled']} | {c['timeout']} | {c['not run']} | {rate:.1%} | {TARGETS[folder]:.0%} |")
        for filename, number, before, after, reason in res["survivors"]:
            tag = f"EQUIVALENT: {reason}" if reason else "SURVIVED"
            listing.append(f"{filename}:{number}: {tag}\n    - {before}\n    + {after}")
    survivors = [entry for entry in listing if "SURVIVED" in entry.splitlines()[0]]
    print(f"\n{len(survivors)} surviving mutants (not equivalent):")
    print("\n".join(survivors))
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "survivors.txt").write_text("\n".join(listing) + "\n")
    results = opts.out / "results.md"
    results.write_text("# Mutation testing results\n\nWritten by `./scripts/mutation.sh` (mutmut 2; see "
                       "`scripts/mutation/`). Every survivor, and the reason for each one counted as "
                       "equivalent, is in `survivors.txt`.\n\n" + "\n".join(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
