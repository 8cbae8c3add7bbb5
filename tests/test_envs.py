"""Dependencies: pyproject.toml declares, requirements.lock pins, envs/*.yaml (the conda
environments of `--sdm conda`, which cannot be created on these machines) agree with both, and
every rule that runs Python names one."""

import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("pin", REPO / "envs" / "pin.py")
pin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pin)

VERSIONS, REQUIRED_BY = pin.read_lock()


UNLOCKED_EXTRAS = {"embed"}  # the osv5m_embed rule's transformers: installed by hand (pip install -e .[embed])


def all_declared():
    groups = pin.declared().items()
    return [Requirement(r) for extra, requirements in groups if extra not in UNLOCKED_EXTRAS for r in requirements]


def test_the_lock_pins_every_declared_package_within_its_range():
    for requirement in all_declared():
        name = pin.normalise(requirement.name)
        assert name in VERSIONS, f"{name} is declared in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(VERSIONS[name], prereleases=True), (
            f"requirements.lock pins {name}=={VERSIONS[name]}, outside pyproject.toml's {requirement}"
        )


def test_the_lock_holds_no_cuda_library_and_torch_is_pinned_there_only():
    cuda = [name for name in VERSIONS if name.startswith(("nvidia-", "cuda-", "triton"))]
    assert not cuda, f"add {cuda} to CUDA_PACKAGES in the Makefile and run `make lock`"
    assert "torch" in VERSIONS
    for path in ["Makefile", "pyproject.toml", ".ci/run"]:
        assert not re.search(r"torch\s*==\s*[0-9]", (REPO / path).read_text()), f"{path} pins torch: the lock does"


def test_the_lock_is_only_what_the_declared_packages_need():
    """Every locked package is declared or required by a locked package (the lock's via notes)."""
    declared = {pin.normalise(r.name) for r in all_declared()}
    assert pin.closure(sorted(declared), REQUIRED_BY) == set(VERSIONS)


def test_nothing_is_declared_that_nothing_imports():
    """The core is what the library imports; fire, tqdm, scikit-image (medmnist's) are not declared."""
    groups = pin.declared()
    assert sorted(pin.requirement_name(r) for r in groups["core"]) == ["numpy", "scikit-learn", "torch"]
    names = {pin.requirement_name(r) for requirements in groups.values() for r in requirements}
    assert not names & {"fire", "tqdm", "scikit-image", "medmnist"}
    assert "urllib3" in names  # imported by the OpenML source


@pytest.mark.parametrize("env", ["train", "workflow"])
def test_each_env_file_parses_and_pins_the_locked_versions(env):
    text = (REPO / "envs" / f"{env}.yaml").read_text()
    assert text == pin.render(env), f"envs/{env}.yaml is not what envs/pin.py writes from the lock: run `make lock`"
    parsed = yaml.safe_load(text)
    assert parsed["channels"][0] == "conda-forge"
    conda_packages = [d for d in parsed["dependencies"] if isinstance(d, str)]
    assert conda_packages == [f"python={pin.PYTHON}", "pip"]
    assert f"--python-version {pin.PYTHON}" in (REPO / "Makefile").read_text()
    (pip_section,) = [d["pip"] for d in parsed["dependencies"] if isinstance(d, dict)]
    pins = dict(line.split("==") for line in pip_section)
    assert pins and all(VERSIONS[name] == version for name, version in pins.items())
    for root in pin.roots()[env]:
        assert root in pins
    assert "snakemake" not in pins and "pytest" not in pins


def test_the_post_deploy_script_installs_the_makefiles_medmnist():
    script = (REPO / "envs" / "workflow.post-deploy.sh").read_text()
    assert script == pin.render_post_deploy()
    assert re.search(r'pip install --no-deps "medmnist==[0-9.]+"', script)


def rule_blocks():
    """(file, rule header, body) of every rule of workflow/rules/, named or made in a loop."""
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines = path.read_text().splitlines()
        starts = [i for i, line in enumerate(lines) if re.match(r"^\s*(rule|checkpoint)\b.*:\s*$", line)]
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(lines)
            yield path.name, lines[start].strip(), "\n".join(lines[start:end])


def test_every_rule_that_runs_python_names_a_pinned_environment():
    checked = 0
    for file, header, body in rule_blocks():
        assert not re.search(r"^\s+run:\s*$", body, re.M), f"{file}: {header} is a run: block (conda does not apply)"
        if re.search(r"^\s+(script|shell):", body, re.M):
            env = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", body, re.M)
            assert env, f"{file}: {header} runs Python without a conda: environment"
            assert (REPO / "workflow" / "rules" / env.group(1)).resolve().parent == REPO / "envs"
            assert (REPO / "workflow" / "rules" / env.group(1)).exists()
            checked += 1
    assert checked >= 10


def imported_modules():
    """Top-level modules imported anywhere in the project's code (at the top or inside functions)."""
    pattern = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\s|import\s+([A-Za-z_]\w*))", re.M)
    files = [REPO / "Snakefile", *REPO.glob("workflow/**/*.smk")]
    for folder in ["targetcodec", "workflow", "tests", "benchmarks", "envs"]:
        files += (REPO / folder).rglob("*.py")
    for path in files:
        for match in pattern.finditer(path.read_text()):
            yield match.group(1) or match.group(2), path.relative_to(REPO)


def test_everything_imported_is_declared():
    """Every third-party module the code imports comes from a package pyproject.toml declares
    (or the Makefile's medmnist)."""
    every_extra = [Requirement(r) for requirements in pin.declared().values() for r in requirements]
    declared = {pin.normalise(r.name) for r in every_extra} | {"medmnist"}
    distributions = importlib.metadata.packages_distributions()
    local = {path.stem for path in (REPO / "tests").glob("*.py")} | {
        p.name for p in (REPO / "tests").iterdir() if p.is_dir()
    }
    local |= {"targetcodec", "pin"} | {
        path.stem for path in (REPO / "benchmarks").glob("*.py")
    }  # device.py runs the others
    undeclared = set()
    for module, path in imported_modules():
        if module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        packages = {pin.normalise(d) for d in distributions.get(module, [module])}
        if not packages & declared:
            undeclared.add(f"{module} ({path})")
    assert not undeclared
