"""From the workflow's config (config.yaml, validated) to the library's objects, and the names of
the benchmark's configurations: ``least_squares``, ``end_to_end-k25``, ... (method and k)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..methods import METHODS, get_method
from ..specs import Architecture, MethodSettings, RunSpec, TrainingConfig

LABEL = re.compile(r"^(?P<method>[a-z_]+?)(?:-k(?P<k>\d+))?$")


@dataclass(frozen=True)
class Configuration:
    """One row of Tables 3-5: a method, and k for the methods with k classes."""

    method: str
    k: int | None = None

    @property
    def label(self) -> str:
        return self.method if self.k is None else f"{self.method}-k{self.k}"

    def display(self, settings: MethodSettings = MethodSettings()) -> str:
        """The row label of Tables 3-5, with the settings the method shows (e.g. soft binning's lambda_sigma)."""
        return METHODS[self.method].display(self.k, settings)

    @classmethod
    def parse(cls, label: str) -> Configuration:
        match = LABEL.match(label)
        if not match:
            raise ValueError(f"not a configuration label: {label!r}")
        method = get_method(match["method"]).name
        k = int(match["k"]) if match["k"] else None
        if METHODS[method].uses_k != (k is not None):
            raise ValueError(
                f"configuration {label!r}: method {method!r} {'needs' if METHODS[method].uses_k else 'takes no'} k"
            )
        return cls(method, k)


def configurations(methods: list[str], ks: list[int]) -> list[Configuration]:
    """Every (method, k) of the grid: 2 + 5 x 3 = 17 for the paper's seven methods and three k."""
    out = []
    for name in methods:
        if METHODS[name].uses_k:
            out += [Configuration(name, k) for k in ks]
        else:
            out.append(Configuration(name))
    return out


NO_K = "no_k"  # the job group of the methods without k (least squares, Huber)


def job_groups(configurations: list[Configuration]) -> dict[str, list[str]]:
    """Training jobs that share a k (config key sweeps.lr.job_per: k): {job name: the labels of the
    configurations it trains, in order}, "k5", "k25", ... and ``NO_K`` for the methods without k.
    The paper's 17 configurations then start 4 jobs per dataset instead of 17."""
    groups: dict[str, list[str]] = {}
    for c in configurations:
        groups.setdefault(NO_K if c.k is None else f"k{c.k}", []).append(c.label)
    return groups


def seed_list(config: dict) -> list[int]:
    seeds = config["seeds"]
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def seed_packs(seeds: list[int], pack_size: int | None) -> list[list[int]]:
    """Seeds split into packs that train together (pack_size None: one pack of all seeds)."""
    size = len(seeds) if not pack_size else pack_size
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def pack_name(seeds: list[int]) -> str:
    """The name of a pack's log and checkpoint: seeds0-9, or seed3 for a pack of one seed."""
    return f"seeds{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed{seeds[0]}"


def model_kind(config: dict, dataset: str) -> str:
    return config["datasets"][dataset].get("model") or (
        "cnn" if config["datasets"][dataset]["source"] == "medmnist" else "mlp"
    )


def config_value(config: dict, dotted: str):
    """``config_value(config, "codec.alpha")`` is ``config["codec"]["alpha"]``."""
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


# MethodSettings fields and the config keys they come from.
METHOD_SETTING_KEYS = {
    "huber_delta": "huber_delta",
    "soft_binning_lambda_sigma": "codec.soft_binning_lambda_sigma",
    "alpha": "codec.alpha",
    "end_to_end_codec_init": "end_to_end.codec_init",
    "kl_reduction": "end_to_end.kl_reduction",
    "grid": "codec.grid",
    "hard_bins": "codec.hard_bins",
    "softmax_decoder_init": "codec.softmax_decoder_init",
}


def method_settings(config: dict) -> MethodSettings:
    """Every method constant from a full config (the workflow's planning, the tables' labels)."""
    return MethodSettings(**{field: config_value(config, key) for field, key in METHOD_SETTING_KEYS.items()})


def grid_placement(config: dict, method: str) -> str:
    """Where the k classes of a method sit for m = 1 targets: codec.grid, unless codec.grid_by_method
    names the method (e.g. hard binning on bin midpoints, section 2.2, and the codecs on endpoints)."""
    return config["codec"].get("grid_by_method", {}).get(method, config["codec"]["grid"])


def job_params(config: dict, dataset: str, label: str) -> dict:
    """What a training or sweep job of (dataset, configuration) reads, as plain values: the rule's
    ``params.job``. Snakemake reruns a job when its params change, so this holds the settings the
    job's numbers depend on and no others: a change to, say, the end-to-end lambdas reruns only the
    end-to-end jobs. Which settings a method reads is part of its definition (``Method.reads``)."""
    configuration = Configuration.parse(label)
    method = METHODS[configuration.method]
    kind = model_kind(config, dataset)
    t = config["training"]
    job = {
        "dataset": dataset,
        "code": config["datasets"][dataset].get("code", dataset),
        "configuration": label,
        "architecture": {"kind": kind, **config["architecture"][kind]},
        "training": {
            "grad_clip": t["grad_clip"],
            "schedule": t["schedule"],
            "warmup_fraction": t["warmup_fraction"],
            **t[kind],
        },
        "method": {key: config_value(config, key) for key in method.reads},
    }
    if config.get("method_modules"):
        job["method_modules"] = list(config["method_modules"])  # where methods of one's own are registered
    if method.uses_k:
        job["codec_seed"] = config["split"]["seed"]  # k-means++ initialisation for m > 1 (section 3.3)
        job["method"]["codec.grid"] = grid_placement(config, configuration.method)  # where the k classes sit
    if method.needs_pretrained_codec(method_settings(config)):
        job["codec"] = config["codec"]  # through the pre-trained codec (eq. 7)
    return job


@dataclass(frozen=True)
class Runtime:
    """How a job runs, not what it computes: the device and logging. Not plain data on purpose:
    Snakemake leaves such params out of its rerun trigger, so moving to a GPU reruns nothing."""

    device: str = "auto"
    log_every: int = 10
    eval_batch_size: int = 4096
    workflow_dir: str = "."  # whose git commit the run files record: a moved results folder reruns nothing
    compile: bool = False  # torch.compile the training step: same numbers within float round-off

    @classmethod
    def from_config(cls, config: dict, workflow_dir: str = ".") -> Runtime:
        t = config["training"]
        return cls(
            device=config["device"],
            log_every=t["log_every"],
            eval_batch_size=t["eval_batch_size"],
            workflow_dir=str(workflow_dir),
            compile=bool(t.get("compile", False)),
        )


@dataclass(frozen=True)
class TrainingJob:
    """A training or sweep job's settings, typed once at the job's start from its params."""

    dataset: str
    code: str
    configuration: Configuration
    architecture: Architecture
    training: TrainingConfig
    settings: MethodSettings
    run_defaults: dict  # lr and the lambdas of eq. (8) for runs that no sweep sets
    init_lambda_sigma: float
    codec_seed: int
    device: str
    job: dict  # the params it was made from, recorded in every run file

    @property
    def method(self):
        return METHODS[self.configuration.method]

    @classmethod
    def from_params(cls, job: dict, runtime: Runtime = Runtime()) -> TrainingJob:
        from ..methods import import_method_modules

        import_method_modules(job.get("method_modules"))
        a = dict(job["architecture"])
        kind = a.pop("kind")
        if kind == "cnn":
            arch = Architecture(
                kind="cnn",
                conv_channels=tuple(a["conv_channels"]),
                fc_width=a["fc_width"],
                fc_depth=a["fc_depth"],
                fc_dropout=a["dropout"],
            )
        else:
            arch = Architecture(kind="mlp", width=a["width"], depth=a["depth"], dropout=a["dropout"])
        t, read = job["training"], job["method"]
        training = TrainingConfig(
            batch_size=t["batch_size"],
            max_epochs=t["max_epochs"],
            patience=t["patience"],
            weight_decay=t["weight_decay"],
            codec_weight_decay=read.get("codec.weight_decay", TrainingConfig.codec_weight_decay),
            weight_decay_mode=t.get("weight_decay_mode", TrainingConfig.weight_decay_mode),
            codec_weight_decay_mode=read.get("codec.weight_decay_mode", TrainingConfig.codec_weight_decay_mode),
            grad_clip=t["grad_clip"],
            schedule=t["schedule"],
            warmup_fraction=t["warmup_fraction"],
            eval_batch_size=runtime.eval_batch_size,
            log_every=runtime.log_every,
            compile=runtime.compile,
        )
        flat = {key: value for key, value in read.items() if "." in key or not isinstance(value, dict)}
        flat |= {
            f"{key}.{sub}": v for key, value in read.items() if isinstance(value, dict) for sub, v in value.items()
        }
        settings = MethodSettings(**{field: flat[key] for field, key in METHOD_SETTING_KEYS.items() if key in flat})
        e2e = read.get("end_to_end", {})
        run_defaults = {"lr": t["lr"]} | {
            name: e2e[name] for name in ("lambda_kl", "lambda_auto", "lambda_pred") if name in e2e
        }
        return cls(
            dataset=job["dataset"],
            code=job["code"],
            configuration=Configuration.parse(job["configuration"]),
            architecture=arch,
            training=training,
            settings=settings,
            run_defaults=run_defaults,
            init_lambda_sigma=read.get("codec.init_lambda_sigma", 1.0),
            codec_seed=job.get("codec_seed", 0),
            device=runtime.device,
            job=job,
        )

    def run_specs(self, seeds: list[int], unselected: str = "error", **overrides) -> list[RunSpec]:
        """One RunSpec per seed with the configured learning rate and lambdas, or the given overrides
        (values selected by sweeps).

        ``unselected`` says what a value that config.yaml sets to "selected" takes when no override
        gives it: "error", or "paper", RunSpec's default (Appendix B), for runs that come before its
        sweep (the learning-rate sweep). Methods other than end to end read no lambda: RunSpec's
        defaults stand for them."""
        values = self.run_defaults | overrides
        unresolved = [k for k, v in values.items() if v == "selected"]
        if unresolved and unselected == "paper":
            values.update({k: RunSpec.__dataclass_fields__[k].default for k in unresolved})
        elif unresolved:
            raise ValueError(f"config key 'end_to_end.{unresolved[0]}' is 'selected' but no sweep result was given")
        return [RunSpec(seed=s, **values) for s in seeds]
