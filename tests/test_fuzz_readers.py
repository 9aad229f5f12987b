"""A few hundred mutated DICOM, PNG and NIfTI files per run through the readers: only
ImageReadError (naming the file) may escape, and no output is silently blank.

The cases come from ``benchmarks/fuzz_readers.py`` (the large campaign runs the same
code). The seed is random and printed; set ``RADIOLOGYNET_FUZZ_SEED`` to replay a run and
``RADIOLOGYNET_FUZZ_CASES`` to change the count.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_readers.py"


def _campaign_module():
    spec = importlib.util.spec_from_file_location("fuzz_readers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def test_fuzzed_files_raise_only_image_read_error_and_are_never_silently_blank(tmp_path):
    fuzz = _campaign_module()
    seed = int(os.environ.get("RADIOLOGYNET_FUZZ_SEED", random.randrange(2**32)))
    cases = int(os.environ.get("RADIOLOGYNET_FUZZ_CASES", 300))
    print(f"fuzz seed {seed} ({cases} cases); replay with RADIOLOGYNET_FUZZ_SEED={seed}")
    results = fuzz.run_campaign(cases, seed, tmp_path)
    bugs = [c for c in results if c.outcome in fuzz.BUGS]
    table = fuzz.summary(results)
    examples = "\n".join(
        f"  {c.outcome}: {c.kind} from {c.seed_file}: {c.detail}" for c in bugs[:10]
    )
    assert not bugs, f"seed {seed} (RADIOLOGYNET_FUZZ_SEED={seed} replays it)\n{table}\n{examples}"
    outcomes = {c.outcome for c in results}
    assert "refused" in outcomes and outcomes & {"ok", "warned"}  # the mutations bite


def test_small_bombs_are_refused_from_their_headers_with_little_memory(tmp_path):
    """The cheap part of the bombs campaign (benchmarks/fuzz_readers.py --bombs): small
    files claiming huge images, read in one child process whose peak resident memory
    (VmHWM) stays near what importing the readers takes."""
    fuzz = _campaign_module()
    # the cap keeps a regression from taking the machine: a bomb read runs out of memory
    rows = fuzz.run_bombs(
        tmp_path, fuzz.SMALL_BOMBS, memory_cap_mb=4096, rss_limit_mb=400, one_child=True
    )
    table = fuzz.bombs_table(rows)
    assert all(outcome == "refused" for _, _, outcome, *_ in rows), table
    for name, _size, _outcome, detail, _peak, _seconds in rows:
        assert "claims" in detail and "budget" in detail, f"{name}: {detail}"
