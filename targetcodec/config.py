"""Checks of the workflow config that a JSON schema cannot express; each error names its key."""

from __future__ import annotations

import yaml

# Keys whose values are names, never numbers (a column may be called "1").
STRING_KEYS = {
    "target",
    "code",
    "name",
    "path",
    "flag",
    "drop",
    "run_datasets",
    "methods",
    "separator",
    "results",
    "data_cache",
    "device",
    "sha256",
    "source",
    "url",
    "method_modules",
    "reference",
    "osv5m_dir",
    "embeddings",
    "model",
    "images",
}


def coerce_command_line_values(value, key=None):
    """Snakemake's --config reads nested values as strings ("k_values=[5,25]" gives ["5", "25"]);
    turn strings that spell numbers, booleans or null back into them, except under STRING_KEYS."""
    if key in STRING_KEYS:
        return value
    if isinstance(value, dict):
        return {k: coerce_command_line_values(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_command_line_values(v, key) for v in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, (bool, int, float)):
            return parsed
    return value


def check_config(config: dict) -> None:
    datasets = config["datasets"]
    for key in config.get("run_datasets") or []:
        if key not in datasets:
            raise ValueError(
                f"config key 'run_datasets': {key!r} is not a dataset of 'datasets' ({', '.join(datasets)})"
            )
    from .train.plan import selected_datasets

    selected = selected_datasets(config)
    if not selected:
        raise ValueError("config key 'datasets': no dataset is enabled and 'run_datasets' is empty")
    split = config["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1) > 1e-9:
        raise ValueError(f"config key 'split': train + val + test must be 1, got {total:g}")
    codes = {}
    for key in selected:
        code = datasets[key].get("code", key)
        if code in codes:
            raise ValueError(f"config key 'datasets.{key}.code': {code!r} is also the code of {codes[code]!r}")
        codes[code] = key
    for param in ("lambda_kl", "lambda_auto"):
        if config["end_to_end"][param] == "selected" and not config["sweeps"][param]["enabled"]:
            raise ValueError(f"config key 'end_to_end.{param}': 'selected' needs 'sweeps.{param}.enabled: true'")
    from .methods import METHODS, import_method_modules

    import_method_modules(config.get("method_modules"))
    named = [("methods", config["methods"]), ("sweeps.k.methods", config["sweeps"]["k"]["methods"])]
    if "osv5m" in config:
        named.append(("osv5m.methods", config["osv5m"]["methods"]))
    for where, names in named:
        for i, name in enumerate(names):
            if name not in METHODS:
                raise ValueError(
                    f"config key '{where}[{i}]': unknown method {name!r}{nearest(name, METHODS)}; known: {', '.join(METHODS)}"
                )
            if where == "sweeps.k.methods" and not METHODS[name].uses_k:
                raise ValueError(f"config key '{where}[{i}]': {name!r} has no k to sweep")
    for name in config["codec"].get("grid_by_method", {}):
        if name not in METHODS or not METHODS[name].uses_k:
            raise ValueError(
                f"config key 'codec.grid_by_method.{name}': not a method with k classes{nearest(name, METHODS)}"
            )
    if config["significance"]["reference"] not in config["methods"]:
        raise ValueError(
            f"config key 'significance.reference': {config['significance']['reference']!r} is not in 'methods'"
            f"{nearest(config['significance']['reference'], config['methods'])} (tables and figures compare every method with it: add it)"
        )
    from .osv5m.settings import stage_plan

    stage_plan(config)  # the OSV5M stage's settings, when an osv5m dataset is in the run
    uses_k = [m for m in config["methods"] if METHODS[m].uses_k]
    if uses_k and config["figures"]["k"] not in config["k_values"]:
        raise ValueError(
            f"config key 'figures.k': {config['figures']['k']} is not one of k_values {config['k_values']}"
        )


def _key_path(parts) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def nearest(word, choices) -> str:
    """ " (did you mean 'drop'?)" for the valid choice nearest to a misspelt ``word`` (difflib), or ""."""
    import difflib

    if not isinstance(word, str):
        return ""
    match = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def describe_validation_error(error) -> str:
    """A jsonschema ValidationError as one line that names the config key, with the nearest valid
    key or value where the error is a misspelling."""
    path = _key_path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if (
        error.validator == "additionalProperties"
        and error.validator_value is False
        and isinstance(error.instance, dict)
    ):
        allowed = list(schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in allowed]
        if unknown:
            key = _key_path([*error.absolute_path, unknown[0]])
            return (
                f"config key '{key}': unknown key{nearest(unknown[0], allowed)}; the keys here are {', '.join(allowed)}"
            )
    if "propertyNames" in error.schema_path and error.validator == "enum":
        key = _key_path([*error.absolute_path, error.instance])
        return (
            f"config key '{key}': not {schema.get('description', 'a valid key here')}{nearest(error.instance, error.validator_value)}; "
            f"its keys are {', '.join(map(str, error.validator_value))}"
        )
    hint = schema.get("description")
    where = f"config key '{path}'" if path else "config"
    suggestion = nearest(error.instance, error.validator_value) if error.validator == "enum" else ""
    return f"{where}: {error.message}{suggestion}" + (f" (expected: {hint})" if hint else "")
