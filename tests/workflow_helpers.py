"""Run the project's Snakemake workflow on a copy of it in a temporary folder."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "config.yaml", "workflow", "presets", "profiles", "envs"]


def copy_workflow(dest: Path, git: bool = True) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy(src, dest / name)
    if git:
        env = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
        subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
        subprocess.run(["git", *env, "commit", "-qm", "workflow copy"], cwd=dest, check=True)
    return dest


# Set by `make test-fast`, which leaves out the tests marked slow: a test that runs Snakemake
# without that mark fails there, instead of making the fast loop slow unnoticed.
NO_SNAKEMAKE = "TARGETCODEC_TESTS_WITHOUT_SNAKEMAKE"


def snakemake(workdir: Path, *args, timeout=900, check=True, env=None) -> subprocess.CompletedProcess:
    if os.environ.get(NO_SNAKEMAKE):
        raise AssertionError(f"this test runs Snakemake: mark it @pytest.mark.slow ({NO_SNAKEMAKE} is set)")
    cmd = [sys.executable, "-m", "snakemake", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
            + failed_job_logs(workdir, proc.stdout + proc.stderr)
        )
    return proc


def failed_job_logs(workdir: Path, output: str, tail: int = 3000) -> str:
    """The end of each failed job's own log (Snakemake's "Error in rule ...: ... log: <path>"), for an
    assertion message: Snakemake's output says only that the job failed, its log says why."""
    parts = []
    for block in output.split("Error in rule ")[1:]:
        found = re.search(r"^\s*log: (\S+)", block, re.M)
        path = Path(workdir) / found[1] if found else None
        if path is not None and path.is_file():
            parts.append(f"\n--- {found[1]} (last {tail} characters) ---\n{path.read_text()[-tail:]}")
    return "".join(parts)


def job_counts(snakemake_output: str) -> dict[str, int]:
    """Snakemake's own "Job stats" table (printed by a run and a dry run): {rule: jobs}."""
    table = snakemake_output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M)}
