"""Kill rate per folder and the list of surviving mutants, from the mutmut 2 caches that
scripts/mutation.sh leaves in its work copies. Survivors listed in docs/mutation/equivalent.tsv
(file, the mutated line as mutmut writes it, why it cannot change behaviour) are counted apart:

    kill rate = killed / (killed + survived - equivalent)

Timeouts (mutmut's limit, 10x the baseline run) are counted apart, not as killed: on a busy machine
a slow run is not evidence of a caught bug. "UI text" are lines not mutated (see
mutmut_config.py); "not sampled" are mutants left out by EACPS_MUTATION_SAMPLE (give the report the
same value as the run); "not run" are mutants of the sample that a bounded run did not reach.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections import Counter
from pathlib import Path

KILLED = {"ok_killed", "ok_suspicious"}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (for kill rates measured on a sample)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return centre - half, centre + half
TARGETS = {"search": 0.90, "nodes": 0.90, "verifiers": 0.80}


def load_equivalents(path: Path) -> dict[tuple[str, str], str]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                file, mutated, reason = line.split("\t", 2)
                out[(file, mutated.strip())] = reason
    return out


def mutated_line(work: Path, filename: str, line: str, index: int, line_number: int) -> tuple[str, str]:
    """(original line, mutated line) of one mutant, as mutmut itself applies it."""
    from mutmut import Context, RelativeMutationID, mutate

    path = work / filename
    backup = path.with_name(path.name + ".bak")  # mutmut is testing a mutant of this file right now
    source = (backup if backup.exists() else path).read_text()
    mutant_id = RelativeMutationID(line=line, index=index, line_number=line_number, filename=filename)
    mutated, _ = mutate(Context(source=source, mutation_id=mutant_id, filename=filename, dict_synonyms=[]))
    before, after = source.split("\n"), mutated.split("\n")
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b]
    if not changed and len(after) == len(before):
        return line.strip(), "(no change)"
    i = changed[0] if changed else line_number
    return before[i].strip(), (after[i].strip() if len(after) == len(before) else "(line removed)")


def folder_results(work: Path, equivalents: dict, sample: str | None = None) -> dict:
    db = work / ".mutmut-cache"
    if not db.exists():
        return {}
    sys.path.insert(0, str(work))
    import mutmut_config

    rows = sqlite3.connect(db).execute(
        "SELECT m.id, m.status, s.filename, l.line_number, l.line, m.'index' FROM mutant m JOIN line l ON m.line = l.id "
        "JOIN sourcefile s ON l.sourcefile = s.id ORDER BY s.filename, l.line_number, m.'index'").fetchall()
    counts, survivors = Counter(), []
    for _mid, status, filename, line_number, line, index in rows:
        if status in ("skipped", "untested"):
            if mutmut_config.UI_TEXT.search(line):
                counts["UI text"] += 1
            elif not mutmut_config.in_sample(filename, line, index,
                                             mutmut_config.parse_sample(sample) if sample else mutmut_config.SAMPLE):
                counts["not sampled"] += 1
            else:
                counts["not run"] += 1  # in the sample, not reached (yet)
            continue
        if status == "bad_survived":
            before, after = mutated_line(work, filename, line, index, line_number)
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
    parser.add_argument("--work", type=Path, action="append", required=True,
                        help="a work root of mutation.sh (EACPS_MUTATION_DIR); give several to add up runs "
                             "over different files of a folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sample", action="append", default=[], metavar="FOLDER=K[:R]",
                        help="the EACPS_MUTATION_SAMPLE a folder was run with (default: the environment's)")
    parser.add_argument("folders", nargs="+")
    opts = parser.parse_args()
    equivalents = load_equivalents(opts.out / "equivalent.tsv")
    summary = ["| folder | mutants | killed | survived | equivalent | UI text | not sampled | timeout | not run | kill rate (95% interval) | target |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
    listing = []
    for folder in opts.folders:
        samples = dict(item.split("=") for item in opts.sample)
        parts = [r for r in (folder_results(work / folder, equivalents, samples.get(folder))
                             for work in opts.work) if r]
        res = {"counts": sum((r["counts"] for r in parts), Counter()),
               "survivors": [x for r in parts for x in r["survivors"]]} if parts else {}
        if not res:
            print(f"{folder}/: no results (run ./scripts/mutation.sh {folder})")
            continue
        c = res["counts"]
        tested = c["killed"] + c["survived"]
        rate = c["killed"] / tested if tested else float("nan")
        low, high = wilson(c["killed"], tested)
        total = sum(c.values())
        line = (f"{folder}/: {c['killed']} killed, {c['survived']} survived, {c['equivalent']} equivalent, "
                f"{c['UI text']} UI text, {c['not sampled']} not sampled, {c['timeout']} timeout, {c['not run']} not run "
                f"of {total}: "
                f"kill rate {rate:.1%} (95% interval {low:.0%}-{high:.0%}) "
                f"(target {TARGETS[folder]:.0%})")
        print(line)
        summary.append(f"| {folder}/ | {total} | {c['killed']} | {c['survived']} | {c['equivalent']} | {c['UI text']} | "
                       f"{c['not sampled']} | {c['timeout']} | {c['not run']} | {rate:.1%} ({low:.0%}-{high:.0%}) | "
                       f"{TARGETS[folder]:.0%} |")
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
