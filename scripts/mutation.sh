#!/usr/bin/env bash
# Mutation testing, outside CI: mutmut 2 seeds small bugs one at a time into a copy of the pack and
# runs the tests mapped to each file (scripts/mutation/mutmut_config.py) through a fork server
# that has torch and ComfyUI imported already. Prints the kill rate per folder and lists the
# survivors; writes docs/mutation/results.md and docs/mutation/survivors.txt.
#
#   ./scripts/mutation.sh                      # search/ verifiers/ nodes/
#   ./scripts/mutation.sh search               # one folder
#   ./scripts/mutation.sh verifiers/technical.py verifiers/base.py   # some files of a folder
#   EACPS_MUTATION_BUDGET=1800 ./scripts/mutation.sh nodes   # stop a folder after 30 min (resumable)
#   EACPS_MUTATION_SAMPLE=10 ./scripts/mutation.sh search   # test one mutant in 10 (the same ones each run)
#   EACPS_MUTATION_LIMIT=14400 ./scripts/mutation.sh nodes  # let one test run take 4 h (default 1 h): the
#       baseline runs every mapped test file at once; nodes/'s (14 host files) took over an hour at nice 15
#       on two cores busy with other work. Or run nodes/ a few files at a time (fewer files in the baseline).
#   ./scripts/mutation.sh --report             # only print/write the results of earlier runs
#
# Work copies live in $EACPS_MUTATION_DIR (default /tmp/eacps-mutation), one per folder, with
# mutmut's cache: a rerun tests only mutants that were not killed (and, after a test change, the
# survivors again). The repository itself is never mutated. Runs under `nice -n 15`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
source scripts/setup.sh
PY="$EACPS_PYTHON"
WORK_ROOT="${EACPS_MUTATION_DIR:-/tmp/eacps-mutation}"
BUDGET="${EACPS_MUTATION_BUDGET:-0}"
LIMIT="${EACPS_MUTATION_LIMIT:-3600}"  # seconds one test run (the baseline too) may take in the fork server
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1

if ! "$PY" -c "import mutmut, sys; sys.exit(not mutmut.__version__.startswith('2.'))" 2>/dev/null; then
  echo "mutmut 2 is missing: $PY -m pip install -r requirements-dev.txt" >&2
  exit 1
fi

report_only=0
folders=()
declare -A paths=()
for arg in "$@"; do
  arg="${arg%/}"
  case "$arg" in
    --report) report_only=1 ;;
    search|nodes|verifiers) folders+=("$arg"); paths[$arg]="$arg/" ;;
    search/*.py|nodes/*.py|verifiers/*.py)
      [ -f "$arg" ] || { echo "no file $arg" >&2; exit 2; }
      f="${arg%%/*}"; [[ " ${folders[*]} " == *" $f "* ]] || folders+=("$f")
      paths[$f]="${paths[$f]:+${paths[$f]},}$arg" ;;
    *) echo "unknown argument '$arg': use search, nodes, verifiers, files in them, or --report" >&2; exit 2 ;;
  esac
done
if [ ${#folders[@]} -eq 0 ]; then
  folders=(search verifiers nodes)
  paths=([search]=search/ [verifiers]=verifiers/ [nodes]=nodes/)
fi

run_folder() {
  local folder="$1" targets="$2" work="$WORK_ROOT/$1"
  mkdir -p "$work"
  # a fresh copy of the tracked and new files (so mutants of an old version never linger)
  find "$work" -mindepth 1 -maxdepth 1 ! -name .mutmut-cache ! -name .comfy_base -exec rm -rf {} +
  git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$work"
  ln -sfn "$(readlink -f .venv)" "$work/.venv"
  ln -sfn "$(readlink -f "$COMFYUI_PATH/..")" "$work/.comfyui"
  cp scripts/mutation/mutmut_config.py "$work/mutmut_config.py"
  local baseline
  baseline="$(cd "$work" && "$PY" -c "
import mutmut_config as m
targets = '$targets'.split(',')
print(' '.join(dict.fromkeys(t for f, ts in m.TESTS.items() for t in ts if any(f.startswith(p) for p in targets))))")"
  local host=()
  [[ "$baseline" == *tests/host/* ]] && host=(--host)  # ComfyUI is imported only when a host test is mapped

  export EACPS_TEST_COMFY_BASE="$work/.comfy_base" EACPS_MUTATION_SOCKET="$work/.forkserver.sock"
  rm -f "$EACPS_MUTATION_SOCKET"
  (cd "$work" && exec nice -n 15 "$PY" scripts/mutation/forkserver.py "${host[@]}" --limit "$LIMIT" --socket "$EACPS_MUTATION_SOCKET" \
     --log "$work/tests.log") &
  local server=$!
  trap "kill $server 2>/dev/null || true" RETURN
  for _ in $(seq 600); do [ -S "$EACPS_MUTATION_SOCKET" ] && break; kill -0 $server || return 1; sleep 1; done
  echo "== $targets: mutmut with baseline tests: $baseline"
  local limit=()
  [ "$BUDGET" -gt 0 ] && limit=(timeout --signal=INT "$BUDGET")
  (cd "$work" && nice -n 15 "${limit[@]}" "$PY" -m mutmut run --paths-to-mutate "$targets" --tests-dir tests/ \
     --runner "$PY scripts/mutation/run_tests.py $baseline" --simple-output --no-progress) || true
}

if [ "$report_only" = 0 ]; then
  for folder in "${folders[@]}"; do run_folder "$folder" "${paths[$folder]}"; done
fi
"$PY" scripts/mutation/report.py --work "$WORK_ROOT" --out docs/mutation "${folders[@]}"
