"""The OSV5M stage's settings and plan, read from the workflow config in one place.

``stage_plan(config)`` is everything the stage's rules (workflow/rules/osv5m.smk) and its training
job read from the config: every key of ``osv5m``, ``codec``, ``end_to_end``, ``huber_delta``,
``device``, ``method_modules``, ``osv5m_dir`` and the stage's dataset entry either changes the plan
or is refused by name (tests/test_osv5m.py checks it key by key). The method constants are the
library's (``train.settings.method_settings``), as for the tabular stage. Torch-free: Snakemake
reads it while it plans.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..specs import MethodSettings

# 2-D targets always take the nearest centroid in hard binning (Method.frozen_targets): the config key
# codec.hard_bins chooses between half-open bins and the nearest centre on the 1-D grid only.
HARD_BINS_2D = "nearest"


@dataclass(frozen=True)
class OSVSettings:
    """Training settings of the OSV5M stage (config key ``osv5m``, and the codec's training from
    ``codec`` and ``end_to_end``); see config.yaml for which are the paper's."""

    width: int = 512
    depth: int = 12
    expansion: int = 4
    batch_size: int = 32768
    examples: int = 100_000_000
    lr: float = 5e-5
    warmup_steps: int = 500
    weight_decay: float = 0.05
    codec_weight_decay: float = 1e-4
    codec_weight_decay_mode: str = "decoupled"  # of the trained codec parameters and of eq. (7)'s pre-training
    grad_clip: float = 1.0
    precision: str = "fp32"  # or "bf16": autocast of the head's matrix products
    tf32: bool = True
    target_scaling: str = "fixed"
    data_on_device: str = "auto"  # auto, yes (device), no (host memory, pinned on GPUs, + asynchronous copies)
    checkpoint_every: int = 100
    log_every: int = 50
    eval_batch_size: int = 8192
    lambda_kl: float = 0.068
    lambda_auto: float = 1.0
    lambda_pred: float = 1.0
    init_lambda_sigma: float = 1.0
    codec_pretrain_steps: int = 2000  # eq. (7) on up to 100,000 training targets (trained codec, codec_init pretrained)
    codec_pretrain_lr: float = 1e-2
    codec_pretrain_batch_size: int | None = None  # None: full batch

    @property
    def total_steps(self) -> int:
        """Steps until ``examples`` training examples are seen: ceil(100M / 32,768) = 3,052 (Appendix C)."""
        return math.ceil(self.examples / self.batch_size)

    @property
    def warmup_fraction(self) -> float:
        """``warmup_steps`` as the share of all steps that ``optim.learning_rate_factor`` takes
        (which rounds it back to ``warmup_steps``)."""
        return self.warmup_steps / self.total_steps

    def computed(self) -> OSVSettings:
        """These settings without the ones that only say how a job runs (data placement, checkpoint,
        progress and evaluation chunks): what a checkpoint must match."""
        return replace(self, data_on_device="", checkpoint_every=0, log_every=0, eval_batch_size=0)

    @classmethod
    def from_config(cls, config: dict) -> OSVSettings:
        o, codec, e2e = config["osv5m"], config["codec"], config["end_to_end"]
        return cls(
            **{key: o["head"][key] for key in ("width", "depth", "expansion")},
            **{
                key: o[key]
                for key in (
                    "batch_size",
                    "examples",
                    "lr",
                    "warmup_steps",
                    "weight_decay",
                    "grad_clip",
                    "precision",
                    "tf32",
                    "target_scaling",
                    "data_on_device",
                    "checkpoint_every",
                    "log_every",
                    "eval_batch_size",
                )
            },
            codec_weight_decay=codec["weight_decay"],
            codec_weight_decay_mode=codec["weight_decay_mode"],
            lambda_kl=_number(e2e["lambda_kl"], "end_to_end.lambda_kl"),
            lambda_auto=_number(e2e["lambda_auto"], "end_to_end.lambda_auto"),
            lambda_pred=e2e["lambda_pred"],
            init_lambda_sigma=codec["init_lambda_sigma"],
            codec_pretrain_steps=codec["pretrain"]["steps"],
            codec_pretrain_lr=codec["pretrain"]["lr"],
            codec_pretrain_batch_size=codec["pretrain"]["batch_size"],
        )


def _number(value, key):
    if value == "selected":
        raise ValueError(
            f"config key '{key}': 'selected' is not available in the osv5m stage (no sweeps at this scale); give a number"
        )
    return float(value)


def stage_method_settings(config: dict) -> MethodSettings:
    """The library's method constants (``method_settings``) as the stage's 2-D targets take them:
    hard binning always into the nearest centroid (``HARD_BINS_2D``), so that codec.hard_bins, which
    means nothing here, reruns no OSV5M job."""
    from ..train.settings import method_settings

    return replace(method_settings(config), hard_bins=HARD_BINS_2D)


def osv5m_datasets(config: dict) -> list[str]:
    """The datasets of source osv5m in the run (run_datasets, else the enabled ones): none or one."""
    from ..train.plan import selected_datasets

    found = [key for key in selected_datasets(config) if config["datasets"][key].get("source") == "osv5m"]
    if len(found) > 1:
        raise ValueError(f"config key 'run_datasets': only one osv5m dataset per run ({', '.join(found)})")
    return found


def data_folder(config: dict, dataset: str) -> str | None:
    """The stage's data folder: config key ``osv5m_dir`` or ``datasets.<dataset>.path`` (the same
    thing; both may be given if they agree), None if neither is."""
    top, entry = config.get("osv5m_dir"), config["datasets"][dataset].get("path")
    if top and entry and Path(top) != Path(entry):
        raise ValueError(
            f"config keys 'osv5m_dir' ({top}) and 'datasets.{dataset}.path' ({entry}) name different data "
            f"folders; give one of them"
        )
    return top or entry


@dataclass(frozen=True)
class StagePlan:
    """What the OSV5M stage's rules and training jobs read from the config (plain values)."""

    dataset: str  # the dataset key (datasets.<key>, source osv5m)
    code: str  # its short name in run records
    root: str | None  # the data folder (osv5m_dir or datasets.<key>.path); None: not given (the rules say so)
    labels: list[str]  # configurations (method, k): least_squares, end_to_end-k625, ...
    seeds: list[int]
    packs: list[list[int]]  # the seeds of each training job
    parallel: str  # pack (seeds batched as one model per job) or ddp
    processes: int  # processes per training job: 1 (pack) or osv5m.ddp_processes (ddp, torchrun)
    threads: int  # torch threads per process
    training_resources: dict  # Snakemake resources of a training job
    device: str
    method_modules: list[str]
    settings: dict  # OSVSettings fields: what every training job computes with
    method: dict  # MethodSettings fields
    embeddings: str | None  # csv layout: the folder of <id>.npy
    images: str | None  # osv5m.embed.images: embeddings computed from these images by rule osv5m_embed
    embed: dict  # the osv5m_embed rule's model, batch size and resources
    validation: str | float
    validation_seed: int
    max_bad_fraction: float  # bad samples (skipped and counted) above which preparation stops

    @property
    def ddp(self) -> bool:
        """One seed per job over ``processes`` processes (torchrun), not a pack of seeds in one."""
        return self.parallel == "ddp"

    def job(self, label: str, seeds: list[int], **files) -> dict:
        """A training job's JSON (``targetcodec.train.osv5m.Job``'s fields) for ``label`` and ``seeds``."""
        return {
            "label": label,
            "seeds": list(seeds),
            "dataset": self.dataset,
            "code": self.code,
            "settings": self.settings,
            "method": self.method,
            "device": self.device,
            "threads": self.threads,
            "method_modules": self.method_modules,
            **files,
        }


def stage_plan(config: dict) -> StagePlan | None:
    """The stage's plan, or None when no osv5m dataset is in the run. Raises ValueError naming the
    config key of a value the stage cannot take."""
    found = osv5m_datasets(config)
    if not found:
        return None
    from ..train.settings import configurations, seed_packs

    key, o = found[0], config["osv5m"]
    if config["codec"].get("grid_by_method"):
        raise ValueError(
            "config key 'codec.grid_by_method': the osv5m stage places every method's classes on one 2-D grid "
            "(codec.grid); run it without grid_by_method"
        )
    seeds = list(range(o["seeds"])) if isinstance(o["seeds"], int) else list(o["seeds"])
    ddp = o["parallel"] == "ddp"
    resources = dict(o["training_resources"])
    if ddp and resources.get("gpu", 1):
        resources["gpu"] = o["ddp_processes"]  # a GPU per process
    embed = o["embed"]
    return StagePlan(
        dataset=key,
        code=config["datasets"][key].get("code", key),
        root=data_folder(config, key),
        labels=[c.label for c in configurations(o["methods"], [o["k"]])],
        seeds=seeds,
        packs=[[seed] for seed in seeds] if ddp else seed_packs(seeds, o["pack_size"]),
        parallel=o["parallel"],
        processes=o["ddp_processes"] if ddp else 1,
        threads=o["threads"],
        training_resources=resources,
        device=config["device"],
        method_modules=list(config.get("method_modules") or []),
        settings=asdict(OSVSettings.from_config(config)),
        method=asdict(stage_method_settings(config)),
        embeddings=o["embeddings"],
        images=embed["images"],
        embed={"model": embed["model"], "batch_size": embed["batch_size"], "resources": dict(embed["resources"])},
        validation=o["validation"],
        validation_seed=o["validation_seed"],
        max_bad_fraction=o["max_bad_fraction"],
    )
