"""The reliability tests, counted by fault class from the test suite itself.

    python tests/fault_classes.py          # prints the table of docs/reliability.md

Every test of a fault class carries the marker ``fault("<kind>")`` (a module's ``pytestmark``, or a
test's decorator); this collects tests/test_reliability_*.py and tests/test_osv5m*.py (nothing runs) and counts the marked
tests per kind, a parametrised test once per case. tests/test_docs.py checks that
docs/reliability.md holds the table printed here, so the page cannot drift from the tests.
"""

from __future__ import annotations

import collections
import contextlib
import io
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# kind -> (the fault, what the tests check happens)
KINDS = {
    "bad_config": (
        "a wrong configuration: misspelt keys in every mapping and dataset source, keys of another "
        "source, values out of range",
        "refused before any job starts; the message names the key and the nearest valid one (and "
        "config.yaml, every preset and the command in its header are accepted)",
    ),
    "bad_data": (
        "bad data files: values beyond float32 or far outside their column (any split, the target), "
        "too few rows, header-only files, bad strings in a numeric target, a column named twice",
        "refused with the dataset, column and rows, nothing written; or dropped and counted where "
        "`extreme_values: drop` says so (and heavy tails and large units pass)",
    ),
    "failed_runs": (
        "runs that learn nothing or blow up (learning rate 1000) in jobs, sweeps and a Snakemake run",
        "recorded as failed with the reason, never in a table cell or an average; a sweep never selects them",
    ),
    "damaged_files": (
        "outputs truncated, emptied or missing a part: run, prepared, codec, selected, sweep and "
        "metrics files, checkpoints, OpenStreetView-5M run records, predictions and caches",
        "the reader names the file and says what to do; Snakemake rebuilds it once deleted",
    ),
    "untrusted_files": (
        "malicious pickles as a checkpoint, in prepared, codec and MedMNIST `.npz` files, in a copied OpenML cache",
        "refused or removed unread; no payload runs",
    ),
    "interrupted_jobs": (
        "jobs killed mid-training, after their sweep, half-way through their configurations, "
        "resumed with other logging settings or from another configuration's checkpoint",
        "resumed to the numbers of an uninterrupted run, without redoing finished work; a foreign "
        "checkpoint is refused",
    ),
    "concurrent_runs": (
        "the same job started twice on one results folder, from two working directories",
        "the second stops at once, naming the checkpoint and the process holding it; a killed job "
        "leaves no lock behind",
    ),
    "osv5m_data": (
        "OpenStreetView-5M samples with NaN or out-of-range coordinates, missing, wrong-sized, "
        "non-finite or beyond-float16 embeddings, unreadable members, truncated or short shards, "
        "repeated ids, a validation split that leaves no rows",
        "each bad sample skipped and counted per reason and shard; above `osv5m.max_bad_fraction` "
        "the preparation stops naming the shard and leaves no cache; refusals name the key, id or shard",
    ),
    "permissions": (
        "a results folder shared by a group (umask 002 and 022)",
        "every kind of output gets the mode the umask allows",
    ),
}


class _Collector:
    def __init__(self):
        self.counts: collections.Counter[str] = collections.Counter()
        self.unknown: list[str] = []

    def pytest_collection_modifyitems(self, items):
        for item in items:
            marker = item.get_closest_marker("fault")
            if marker is None:
                continue
            kind = marker.args[0] if marker.args else ""
            if kind in KINDS:
                self.counts[kind] += 1
            else:
                self.unknown.append(f"{item.nodeid}: fault({kind!r})")


def counts() -> dict[str, int]:
    """The number of tests of each fault kind in tests/test_reliability_*.py and the OpenStreetView-5M
    stage's tests (tests/test_osv5m*.py)."""
    collector = _Collector()
    paths = sorted(str(p) for pattern in ("test_reliability_*.py", "test_osv5m*.py") for p in TESTS.glob(pattern))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = pytest.main(
            ["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", str(TESTS.parent), *paths],
            plugins=[collector],
        )
    if code != 0:
        raise RuntimeError(f"collecting the reliability tests failed (pytest exit code {code}):\n{output.getvalue()}")
    if collector.unknown:
        raise RuntimeError(f"unknown fault kinds (add them to KINDS): {'; '.join(collector.unknown)}")
    return {kind: collector.counts[kind] for kind in KINDS}


def table(numbers: dict[str, int]) -> str:
    lines = ["| fault class (`fault` marker) | the fault | what happens | tests |", "|---|---|---|---|"]
    for kind, (fault, outcome) in KINDS.items():
        lines.append(f"| `{kind}` | {fault} | {outcome} | {numbers[kind]} |")
    lines.append(f"| all | | | {sum(numbers.values())} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path[:0] = [str(TESTS.parent), str(TESTS)]  # this checkout's library; the tests' helpers by name
    print(table(counts()))
