"""Write the conda environments of the workflow's rules (envs/*.yaml) from requirements.lock.

`make lock` runs it after resolving the lock; tests/test_envs.py checks that the files are what it
writes. Each environment is Python from conda-forge plus, from PyPI, the packages its rules import
and everything they need, at the lock's versions (the lock's "# via" notes give the dependencies).
The scripts import targetcodec itself from the repository: Snakemake puts the Snakefile's folder on
a script's path, so the library need not be installed in the environments.
"""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYTHON = "3.11"  # the lock's Python (--python-version in the Makefile's lock target)
# Packages that run Snakemake itself rather than a job's script: not in the job environments.
RUNNER = {"snakemake", "snakemake-executor-plugin-slurm"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0))


def declared() -> dict[str, list[str]]:
    """pyproject.toml's requirements: 'core' and one list per extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"core": list(project["dependencies"]), **project["optional-dependencies"]}


def roots() -> dict[str, list[str]]:
    """The packages each environment is made of (their dependencies come from the lock)."""
    groups = {group: [requirement_name(r) for r in requirements] for group, requirements in declared().items()}
    return {
        # train, sweep, pretrain_codec: the library and the parquet files of the sweeps
        "train": groups["core"] + ["pandas", "pyarrow"],
        # data sources, preparation, aggregation, tables, figures
        "workflow": groups["core"] + [name for name in groups["workflow"] if name not in RUNNER],
    }


def read_lock(path: Path = LOCK) -> tuple[dict[str, str], dict[str, set[str]]]:
    """{package: version} and {package: the packages that require it} from a uv/pip-tools lock."""
    versions, required_by, current = {}, {}, None
    for line in path.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if pin:
            current = normalise(pin.group(1))
            versions[current] = pin.group(2)
            required_by[current] = set()
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[.*\])?\s*(\(.*\))?$", line)
        if via and current is not None and via.group(1) != "via":
            required_by[current].add(normalise(via.group(1)))
    return versions, required_by


def closure(packages: list[str], required_by: dict[str, set[str]]) -> set[str]:
    """The packages and, recursively, every locked package one of them requires."""
    members = set(packages)
    while True:
        more = {p for p, parents in required_by.items() if p not in members and parents & members}
        if not more:
            return members
        members |= more


def medmnist_spec() -> str:
    return re.search(r"^MEDMNIST_SPEC := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


HEADERS = {
    "train": "the rules that train networks (train, sweep, pretrain_codec)",
    "workflow": "the rules that download, prepare and report (download, prepare, aggregate, tables, figures)",
}


def render(env: str) -> str:
    versions, required_by = read_lock()
    packages = closure(roots()[env], required_by)
    missing = sorted(p for p in packages if p not in versions)
    if missing:
        raise SystemExit(f"{LOCK.name} has no version of {', '.join(missing)}: run `make lock`")
    lines = [
        f"# The conda environment of {HEADERS[env]},",
        "# for `snakemake --sdm conda`. Written by envs/pin.py from requirements.lock (`make lock`): do not edit.",
        "# Python from conda-forge; the packages from PyPI at the lock's versions (on Linux, PyPI's torch",
        "# brings its CUDA libraries). targetcodec itself is imported from the repository.",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        f"  - python={PYTHON}",
        "  - pip",
        "  - pip:",
        *[f"      - {p}=={versions[p]}" for p in sorted(packages)],
    ]
    return "\n".join(lines) + "\n"


def render_post_deploy() -> str:
    return (
        "#!/usr/bin/env bash\n"
        "# Snakemake runs this in envs/workflow.yaml's environment once it is created. Written by envs/pin.py.\n"
        "# medmnist without its dependencies, as the Makefile installs it: its metadata pulls torchvision,\n"
        "# scikit-image, fire and tqdm, which the code we use does not import.\n"
        "set -euo pipefail\n"
        f'python -m pip install --no-deps "{medmnist_spec()}"\n'
    )


def files() -> dict[Path, str]:
    return {
        ROOT / "envs" / "train.yaml": render("train"),
        ROOT / "envs" / "workflow.yaml": render("workflow"),
        ROOT / "envs" / "workflow.post-deploy.sh": render_post_deploy(),
    }


if __name__ == "__main__":
    for path, text in files().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
