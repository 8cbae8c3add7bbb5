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

    @property
    def display(self) -> str:
        name = METHODS[self.method].label
        if self.method == "soft_binning":
            name += " $\\lambda_\\sigma = 0.5$"
        return name if self.k is None else f"{name} k = {self.k}"

    @classmethod
    def parse(cls, label: str) -> "Configuration":
        match = LABEL.match(label)
        if not match:
            raise ValueError(f"not a configuration label: {label!r}")
        method = get_method(match["method"]).name
        k = int(match["k"]) if match["k"] else None
        if METHODS[method].uses_k != (k is not None):
            raise ValueError(f"configuration {label!r}: method {method!r} {'needs' if METHODS[method].uses_k else 'takes no'} k")
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


def seed_list(config: dict) -> list[int]:
    seeds = config["seeds"]
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def seed_packs(seeds: list[int], pack_size: int | None) -> list[list[int]]:
    """Seeds split into packs that train together (pack_size None: one pack of all seeds)."""
    size = len(seeds) if not pack_size else pack_size
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def model_kind(config: dict, dataset: str) -> str:
    return config["datasets"][dataset].get("model") or ("cnn" if config["datasets"][dataset]["source"] == "medmnist" else "mlp")


def architecture(config: dict, dataset: str) -> Architecture:
    kind = model_kind(config, dataset)
    a = config["architecture"][kind]
    if kind == "cnn":
        return Architecture(kind="cnn", conv_channels=tuple(a["conv_channels"]), fc_width=a["fc_width"], fc_depth=a["fc_depth"],
                            fc_dropout=a["dropout"])
    return Architecture(kind="mlp", width=a["width"], depth=a["depth"], dropout=a["dropout"])


def training_config(config: dict, dataset: str) -> TrainingConfig:
    t = config["training"]
    per_model = t[model_kind(config, dataset)]
    return TrainingConfig(
        batch_size=per_model["batch_size"],
        max_epochs=per_model["max_epochs"],
        patience=per_model["patience"],
        weight_decay=per_model["weight_decay"],
        codec_weight_decay=config["codec"]["weight_decay"],
        weight_decay_mode=per_model["weight_decay_mode"],
        codec_weight_decay_mode=config["codec"]["weight_decay_mode"],
        grad_clip=t["grad_clip"],
        schedule=t["schedule"],
        warmup_fraction=t["warmup_fraction"],
        eval_batch_size=t["eval_batch_size"],
        log_every=t["log_every"],
    )


def method_settings(config: dict) -> MethodSettings:
    return MethodSettings(
        huber_delta=config["huber_delta"],
        soft_binning_lambda_sigma=config["codec"]["soft_binning_lambda_sigma"],
        alpha=config["codec"]["alpha"],
        end_to_end_codec_init=config["end_to_end"]["codec_init"],
        grid=config["codec"]["grid"],
        hard_bins=config["codec"]["hard_bins"],
        softmax_decoder_init=config["codec"]["softmax_decoder_init"],
    )


def run_specs(config: dict, dataset: str, seeds: list[int], lr: float | None = None, unselected: str = "error",
              **overrides) -> list[RunSpec]:
    """One RunSpec per seed with the configured learning rate and lambdas, or the given overrides
    (values selected by sweeps).

    ``unselected`` says what a value that config.yaml sets to "selected" takes when no override gives
    it: "error", or "paper", RunSpec's default (Appendix B), for runs it does not enter (methods
    other than end to end) or that come before its sweep (the learning-rate sweep)."""
    e2e = config["end_to_end"]
    lr = lr if lr is not None else config["training"][model_kind(config, dataset)]["lr"]
    values = dict(lr=lr, lambda_kl=e2e["lambda_kl"], lambda_auto=e2e["lambda_auto"], lambda_pred=e2e["lambda_pred"])
    values.update(overrides)
    unresolved = [k for k, v in values.items() if v == "selected"]
    if unresolved and unselected == "paper":
        values.update({k: RunSpec.__dataclass_fields__[k].default for k in unresolved})
    elif unresolved:
        raise ValueError(f"config key 'end_to_end.{unresolved[0]}' is 'selected' but no sweep result was given")
    return [RunSpec(seed=s, **values) for s in seeds]


def relevant_settings(config: dict, dataset: str, label: str) -> dict:
    """The settings a configuration's numbers depend on, and no others: Snakemake reruns a job when
    they change, so a change to, say, the end-to-end lambdas reruns only the end-to-end jobs."""
    kind = model_kind(config, dataset)
    method = Configuration.parse(label).method
    training = {key: value for key, value in config["training"].items() if key not in ("mlp", "cnn", "log_every", "eval_batch_size")}
    out = {"architecture": config["architecture"][kind], "training": training | config["training"][kind]}
    codec = config["codec"]
    if method == "huber":
        out["huber_delta"] = config["huber_delta"]
    if method in ("softmax_least_squares", "end_to_end"):
        out["codec_weight_decay"] = codec["weight_decay"]
        out["codec_weight_decay_mode"] = codec["weight_decay_mode"]
    if method != "least_squares" and method != "huber":
        out["grid"] = codec["grid"]
    if method == "hard_binning":
        out["hard_bins"] = codec["hard_bins"]
    if method == "softmax_least_squares":
        out["softmax_decoder_init"] = codec["softmax_decoder_init"]
    if method == "soft_binning":
        out["soft_binning_lambda_sigma"] = codec["soft_binning_lambda_sigma"]
    if method == "end_to_end":
        out["end_to_end"] = config["end_to_end"]
        out["codec"] = {"init_lambda_sigma": codec["init_lambda_sigma"], "alpha": codec["alpha"]}
    if method == "trained_codec" or (method == "end_to_end" and config["end_to_end"]["codec_init"] == "pretrained"):
        out["codec"] = codec  # through the pre-trained codec
    return out
