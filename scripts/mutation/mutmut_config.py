"""mutmut 2 hooks for scripts/mutation.sh (copied to the root of the mutation work copy, where
mutmut imports it): which tests run against a mutant of each file, and which lines are not mutated.

Each file maps to the few test files that exercise it, unit tests first (pytest stops at the first
failure), so a killed mutant costs seconds. A file missing here is an error, not a silent "no tests".
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import zlib

UNIT = "tests/unit/"
HOST = "tests/host/"
VERIFIER_UNIT = [UNIT + "test_score_mappings.py", UNIT + "test_verifier_interface.py"]

TESTS: dict[str, list[str]] = {
    "search/noise.py": [UNIT + "test_search_contracts.py", UNIT + "test_noise.py"],
    "search/pool.py": [UNIT + "test_search_contracts.py", UNIT + "test_strategy.py"],
    "search/potential.py": [UNIT + "test_strategy.py", UNIT + "test_search_contracts.py"],
    "search/strategy.py": [UNIT + "test_search_contracts.py", UNIT + "test_strategy.py"],
    "search/grid.py": [UNIT + "test_grid.py"],
    "search/report.py": [UNIT + "test_grid.py", UNIT + "test_search_contracts.py"],
    "search/budget.py": [UNIT + "test_compute.py", UNIT + "test_search_contracts.py"],
    "search/halving.py": [UNIT + "test_compute.py", UNIT + "test_quality_replay.py"],
    "search/stage.py": [UNIT + "test_strategy.py", UNIT + "test_compute.py", HOST + "test_runner.py",
                        HOST + "test_compute_nodes.py"],  # run_stage is driven through the nodes
    "search/stopping.py": [UNIT + "test_compute.py", UNIT + "test_quality_replay.py"],
    "verifiers/base.py": [*VERIFIER_UNIT, UNIT + "test_technical_verifier.py", UNIT + "test_api_judge.py"],
    "verifiers/technical.py": [UNIT + "test_technical_verifier.py", UNIT + "test_score_mappings.py"],
    "verifiers/images.py": [UNIT + "test_pixels.py", UNIT + "test_score_mappings.py", HOST + "test_verifiers_clip.py",
                            HOST + "test_verifiers_preference.py"],
    "verifiers/api_judge.py": [UNIT + "test_api_judge.py", HOST + "test_verifiers_judges.py", HOST + "test_verifier_kinds.py"],
    "verifiers/rubric.py": [UNIT + "test_api_judge.py", HOST + "test_verifiers_judges.py"],
    "verifiers/weights.py": [HOST + "test_weight_safety.py", HOST + "test_verifiers_clip.py"],
    "verifiers/clip_score.py": [*VERIFIER_UNIT, HOST + "test_verifiers_clip.py", HOST + "test_verifier_kinds.py"],
    "verifiers/hpsv2.py": [*VERIFIER_UNIT, HOST + "test_verifiers_preference.py", HOST + "test_preference_loading.py",
                           HOST + "test_verifier_kinds.py"],
    "verifiers/pickscore.py": [*VERIFIER_UNIT, HOST + "test_verifiers_preference.py", HOST + "test_preference_loading.py", HOST + "test_verifier_kinds.py", HOST + "test_remote_code.py", HOST + "test_verifier_preprocessing.py"],
    "verifiers/imagereward.py": [*VERIFIER_UNIT, HOST + "test_verifiers_preference.py",
                                 HOST + "test_preference_loading.py", HOST + "test_verifier_kinds.py", HOST + "test_remote_code.py"],
    "verifiers/aesthetic.py": [*VERIFIER_UNIT, HOST + "test_verifiers_clip.py", HOST + "test_readme_file_names.py",
                               HOST + "test_verifier_kinds.py"],
    "verifiers/preservation.py": [*VERIFIER_UNIT, HOST + "test_verifiers_clip.py", HOST + "test_verifier_kinds.py", HOST + "test_remote_code.py", HOST + "test_verifier_preprocessing.py"],
    "verifiers/vlm_judge.py": [*VERIFIER_UNIT, HOST + "test_vlm_judge_parts.py", HOST + "test_verifiers_judges.py", HOST + "test_verifier_kinds.py", HOST + "test_remote_code.py"],
    "verifiers/openclip.py": [UNIT + "test_verifier_interface.py", HOST + "test_verifier_preprocessing.py",
                              HOST + "test_verifiers_clip.py", HOST + "test_verifiers_preference.py",
                              HOST + "test_failures_contained.py"],
    "verifiers/management.py": [HOST + "test_verifier_files.py", HOST + "test_verifiers_clip.py",
                                HOST + "test_weight_safety.py", HOST + "test_verifiers_preference.py",
                                HOST + "test_preference_loading.py", HOST + "test_verifiers_judges.py"],
    "verifiers/protocol.py": [UNIT + "test_verifier_protocol.py", UNIT + "test_score_mappings.py",
                              HOST + "test_third_party_verifier.py"],
    "verifiers/downloads.py": [UNIT + "test_download_catalogue.py", UNIT + "test_download_checks.py",
                               HOST + "test_verifier_downloads.py", HOST + "test_download_contents.py",
                               HOST + "test_verifier_downloads_hub.py"],
    "verifiers/__init__.py": [UNIT + "test_verifier_protocol.py", HOST + "test_third_party_verifier.py"],
    "search/__init__.py": [UNIT + "test_strategy.py"],
    "nodes/__init__.py": [HOST + "test_pack_loading.py"],
    "nodes/types.py": [HOST + "test_pack_loading.py", HOST + "test_search_nodes.py"],
    "nodes/checks.py": [HOST + "test_node_checks.py", HOST + "test_search_nodes.py", HOST + "test_one_node_search.py"],
    "nodes/sampling.py": [HOST + "test_node_checks.py", HOST + "test_node_contracts.py", HOST + "test_search_nodes.py",
                          HOST + "test_remote_parts.py", HOST + "test_compute_nodes.py"],
    "nodes/scoring.py": [HOST + "test_node_contracts.py", HOST + "test_search_nodes.py",
                         HOST + "test_failures_contained.py"],
    "nodes/selection.py": [HOST + "test_node_contracts.py", HOST + "test_search_nodes.py"],
    "nodes/search_nodes.py": [HOST + "test_node_checks.py", HOST + "test_one_node_search.py",
                              HOST + "test_search_nodes.py", HOST + "test_compute_nodes.py"],
    "nodes/saving.py": [HOST + "test_save_report.py"],
    "nodes/compute.py": [HOST + "test_compute_nodes.py", HOST + "test_node_checks.py"],
    "nodes/noise_sources.py": [HOST + "test_batched_noise.py", HOST + "test_runner.py"],
    "nodes/runner.py": [HOST + "test_runner.py", HOST + "test_node_contracts.py", HOST + "test_compute_nodes.py"],
    # test_workers.py: only its refusal tests run here (the multi-instance ones start servers: -m server)
    "nodes/remote.py": [HOST + "test_remote_parts.py", HOST + "test_workers.py", HOST + "test_runner.py"],
    "nodes/workers.py": [HOST + "test_remote_parts.py", HOST + "test_workers.py", HOST + "test_search_nodes.py"],
    "nodes/loaders.py": [HOST + "test_node_checks.py", HOST + "test_verifier_downloads.py", HOST + "test_weight_safety.py", HOST + "test_verifiers_clip.py",
                         HOST + "test_verifiers_preference.py", HOST + "test_verifiers_judges.py"],
}

# Lines whose mutants only change words shown in the UI (tooltips, descriptions, names in menus)
# or a log message: not behaviour a test can or should pin. They are reported as skipped.
# (_download_input's argument only names the repos in the download switch's tooltip.)
UI_TEXT = re.compile(r"^\s*(tooltip|description|display_name|category)\s*=|^\s*\"[^\"]*\"\s*\)?,?\s*$|"
                     r"\btooltip=|\bdescription=|\bdisplay_name=|logging\.|logger\.|\b_download_input\(")


# EACPS_MUTATION_SAMPLE=K tests one mutant in K, chosen by a hash of its file, line text and index
# (the same ones on every run), for when the CPU time for all of them is not there. K:R takes those
# whose hash leaves remainder R (K alone is K:0): 24:1 shares no mutant with the samples 8, 12 or 24
# (hash % 24 == 1 means hash % 12 == 1 and hash % 8 == 1), a held-out set once tests were written
# for those samples' survivors.
def parse_sample(text: str | int | None) -> tuple[int, int]:
    """'K' or 'K:R' (or an int K) -> (K, R) with 0 <= R < K; None or '' -> (1, 0), everything."""
    if text in (None, ""):
        return 1, 0
    k, _, r = str(text).partition(":")
    k, r = int(k), int(r or 0)
    if k < 1 or not 0 <= r < k:
        raise ValueError(f"EACPS_MUTATION_SAMPLE = {text!r}: use K or K:R with K >= 1 and 0 <= R < K")
    return k, r


SAMPLE = parse_sample(os.environ.get("EACPS_MUTATION_SAMPLE"))


def in_sample(filename: str, line: str, index: int, sample: tuple[int, int] = SAMPLE) -> bool:
    k, r = sample
    return k <= 1 or zlib.crc32(f"{filename}:{line.strip()}:{index}".encode()) % k == r


def pre_mutation(context):
    name = context.filename.replace(os.sep, "/")
    if name not in TESTS:
        sys.exit(f"scripts/mutation/mutmut_config.py: no tests mapped for {name}; add it to TESTS")
    if UI_TEXT.search(context.current_source_line) or not in_sample(
            name, context.mutation_id.line, context.mutation_id.index):
        context.skip = True
        return
    runner = f"{shlex.quote(sys.executable)} scripts/mutation/run_tests.py"
    context.config.test_command = " ".join([runner, *TESTS[name]])
