"""The documentation, checked against the repository (unit tests: no Snakemake run).

The README: every repository path it names exists, every `make` target it runs is in the Makefile,
every config key it names (dotted, in backticks, or given to ``--config``) is in the schema, every
``targetcodec.`` name it gives imports, and its Python examples run. Every relative link of the
README and docs/ points to a file, and to a heading of it where it names one. docs/reliability.md
holds the fault table that tests/fault_classes.py counts from the tests.
"""

from __future__ import annotations

import glob
import importlib
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

# Folders of what a run writes (below results/<name>/) and of what the Makefile creates: named in the
# README as outputs, not repository paths.
OUTPUT_ROOTS = {"results", "tables", "figures", "runs", "logs", "reference", "sweeps", "selected", "prepared"}
OUTPUT_ROOTS |= {"codecs", "checkpoints", ".venv", ".snakemake", "resources"}
# A bare name with one of these endings is a file of the repository (config.yaml, CHANGELOG.md, ...).
REPO_FILE_SUFFIXES = {".md", ".yaml", ".yml", ".toml", ".lock", ".py", ".sh", ".cfg"}
# Dotted names ending like this are file names, not config keys.
FILE_SUFFIXES = REPO_FILE_SUFFIXES | {".json", ".csv", ".parquet", ".npz", ".npy", ".png", ".pdf", ".tex", ".html"}
FILE_SUFFIXES |= {".rst", ".txt", ".tsv", ".ckpt", ".tar", ".zip", ".log"}


# --- reading markdown -------------------------------------------------------------------------------

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text without its fenced code blocks."""
    return FENCE.sub("", text)


def inline_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", prose(text))


def shell_tokens(line: str) -> list[str]:
    line = line.split(" #", 1)[0]  # a comment after the command
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose(text), re.M):
        plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
        kept = "".join(c for c in plain if c in " -_" or unicodedata.category(c)[0] in "LN")
        anchors.add(kept.replace(" ", "-"))
    return anchors


# --- the checks, each returning what it found wrong ------------------------------------------------------


def expand_braces(token: str) -> list[str]:
    m = re.search(r"\{([^{}]*,[^{}]*)\}", token)
    if not m:
        return [token]
    return [x for part in m.group(1).split(",") for x in expand_braces(token[: m.start()] + part + token[m.end() :])]


def path_candidates(text: str) -> list[str]:
    """Tokens of inline code and shell blocks that name a repository path."""
    tokens = [t for span in inline_spans(text) for t in shell_tokens(span)]
    for language, body in fenced_blocks(text):
        if language in ("bash", "sh", "console", ""):
            tokens += [t for line in body.splitlines() for t in shell_tokens(line)]
    found = []
    for token in tokens:
        token = token.split("=", 1)[1] if re.match(r"^-*[\w-]+=", token) else token  # KEY=VALUE, --opt=VALUE
        token = token.strip("'\",;:()").rstrip(".")
        if not token or "://" in token or token.startswith(("/", "~", "-", "$")):
            continue
        first = token.split("/", 1)[0]
        if "/" in token:
            if first not in OUTPUT_ROOTS and re.fullmatch(r"[\w.\-/{},<>*]+", token):
                found.append(token)
        elif Path(token).suffix in REPO_FILE_SUFFIXES or token in ("Makefile", "Snakefile"):
            found.append(token)
    return found


def missing_paths(text: str, root: Path = REPO) -> list[str]:
    missing = []
    for token in dict.fromkeys(path_candidates(text)):
        for path in expand_braces(token):
            pattern = re.sub(r"<[^>]*>", "*", path)
            if not glob.glob(str(root / pattern)):
                missing.append(token)
                break
    return missing


def missing_make_targets(text: str, makefile: Path = REPO / "Makefile") -> list[str]:
    targets = set(re.findall(r"^([\w.-]+)\s*:", makefile.read_text(), re.M))
    named = re.findall(r"\bmake ([a-z][\w-]*)", "\n".join(inline_spans(text) + [b for _, b in fenced_blocks(text)]))
    return sorted({t for t in named if t not in targets})


def schema_has(schema: dict, key: str) -> bool:
    """Whether a dotted key (``sweeps.lr.grid``, ``datasets.osv5m.path``, ``codec.pretrain.*``) is in the
    schema: by its properties, or by additionalProperties where a mapping takes any name."""
    defs = schema.get("$defs", {})
    node = schema
    for part in key.split("."):
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[1]]
        if part == "*":
            return bool(node.get("properties")) or isinstance(node.get("additionalProperties"), dict)
        if part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif node.get("additionalProperties") is True or (node.get("type") == "object" and "properties" not in node):
            node = {}
        else:
            return False
    return True


def config_keys(text: str) -> list[str]:
    """Dotted lower-case names in backticks (the part before ': value' or '=value') that are not file
    names or ``targetcodec.`` names, and the keys given to ``--config``."""
    keys = []
    for span in inline_spans(text):
        name = re.split(r"[:=\s]", span, maxsplit=1)[0]
        if not re.fullmatch(r"[a-z][a-z0-9_]*(\.([a-z0-9_]+|\*))+", name):
            continue
        if name.startswith("targetcodec.") or "." + name.rsplit(".", 1)[1] in FILE_SUFFIXES:
            continue
        keys.append(name)
    commands = inline_spans(text) + [b for lang, b in fenced_blocks(text) if lang in ("bash", "sh", "")]
    for command in commands:
        for line in command.splitlines():
            tokens = shell_tokens(line)
            for i, token in enumerate(tokens):
                if token == "--config":
                    for item in tokens[i + 1 :]:
                        if item.startswith("-") or "=" not in item:
                            break
                        keys.append(item.split("=", 1)[0])
    return keys


def unknown_config_keys(text: str, schema_path: Path = SCHEMA) -> list[str]:
    schema = yaml.safe_load(schema_path.read_text())
    return sorted({key for key in config_keys(text) if not schema_has(schema, key)})


def unresolved_names(text: str) -> list[str]:
    """``targetcodec.x.y`` names in backticks that do not import."""
    bad = []
    for span in inline_spans(text):
        if not re.fullmatch(r"targetcodec(\.\w+)+", span):
            continue
        parts = span.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                bad.append(span)
            break
        else:
            bad.append(span)
    return bad


def broken_links(page: Path) -> list[str]:
    """Relative links of a page whose file, or heading, does not exist."""
    bad = []
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists():
            bad.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
            bad.append(target)
    return bad


# --- the README -----------------------------------------------------------------------------------------


def test_the_readme_is_a_short_users_guide():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; keep it under 250 and move details to docs/"


def test_every_repository_path_the_readme_names_exists():
    assert path_candidates(README.read_text()), "no path found: the parser is broken"
    assert missing_paths(README.read_text()) == []


def test_every_make_target_the_readme_names_exists():
    assert missing_make_targets(README.read_text()) == []


def test_every_config_key_the_readme_names_is_in_the_schema():
    assert config_keys(README.read_text()), "no config key found: the parser is broken"
    assert unknown_config_keys(README.read_text()) == []


def test_every_targetcodec_name_the_readme_gives_imports():
    assert unresolved_names(README.read_text()) == []


@pytest.mark.parametrize("page", ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("docs/*.md"))])
def test_every_relative_link_points_to_a_file_and_heading(page):
    assert broken_links(REPO / page) == []


def test_the_readme_library_examples_run(monkeypatch, tmp_path, capsys):
    """The Python blocks, in order and in one namespace, as a reader would paste them."""
    blocks = [body for language, body in fenced_blocks(README.read_text()) if language == "python"]
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"README.md, Python block {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "test R²" in printed and namespace["model"].predict(namespace["X_test"]).shape == namespace["y_test"].shape
    assert len(namespace["results"]) == 6


def test_the_checks_find_what_is_wrong(tmp_path):
    """Each check reports a broken README, so that a passing test means something."""
    broken = """
See `docs/no_such_page.md` and run `make no-such-target`, with `sweeps.lr.gird` or
`--config 'run_dataset=[ailerons]'`; `targetcodec.codec.no_such_function`; [a page](docs/absent.md),
[a heading](docs/slurm.md#no-such-heading).

```bash
snakemake --configfile presets/no_such_preset.yaml
```
"""
    assert set(missing_paths(broken)) == {"docs/no_such_page.md", "presets/no_such_preset.yaml"}
    assert missing_make_targets(broken) == ["no-such-target"]
    assert unknown_config_keys(broken) == ["run_dataset", "sweeps.lr.gird"]
    assert unresolved_names(broken) == ["targetcodec.codec.no_such_function"]
    page = tmp_path / "README.md"
    page.write_text(broken.replace("docs/", str(REPO / "docs") + "/"))
    assert len(broken_links(page)) == 2
    # and what is right passes
    right = "`sweeps.lr.grid`, `datasets.osv5m.path`, `codec.grid_by_method`, `training_resources.mem_mb`"
    assert unknown_config_keys(right) == []


# --- docs/reliability.md --------------------------------------------------------------------------------


def test_the_reliability_page_holds_the_fault_table_the_tests_count():
    page = (REPO / "docs" / "reliability.md").read_text()
    table = re.search(r"<!-- fault-classes[^>]*-->\n(.*?)\n<!-- /fault-classes -->", page, re.S)
    assert table, "docs/reliability.md lost its fault-classes markers"
    counted = subprocess.run(
        [sys.executable, str(REPO / "tests" / "fault_classes.py")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert counted.returncode == 0, counted.stderr
    assert table.group(1).strip() == counted.stdout.strip(), (
        "docs/reliability.md's fault table differs from the tests: paste the output of python tests/fault_classes.py"
    )
