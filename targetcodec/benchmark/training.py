"""One training job of the workflow: a pack of seeds of one (dataset, configuration)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

from ..codec import Codec
from ..methods import METHODS
from ..pack import SplitData, codec_for_method, train_pack
from .results import provenance, run_record, write_run
from .settings import Configuration, architecture, choose_device, method_settings, run_specs, training_config


def train_configuration(config: dict, dataset: str, label: str, seeds: list[int], data_path, codec_path, outputs: list[str],
                        checkpoint=None, log=print, lr: float | None = None, overrides: dict | None = None,
                        workflow_dir=".") -> None:
    """Train ``seeds`` of configuration ``label`` on ``dataset`` as one pack; write ``outputs`` (one per seed, same order)."""
    configuration = Configuration.parse(label)
    method = METHODS[configuration.method]
    if len(outputs) != len(seeds):
        raise ValueError(f"{len(outputs)} output files for {len(seeds)} seeds")
    data = SplitData.load(data_path)
    settings = method_settings(config)
    pretrained = Codec.load(codec_path) if codec_path else None
    codec = codec_for_method(method, data.y_train, configuration.k, settings, pretrained,
                             init_lambda_sigma=config["codec"]["init_lambda_sigma"], seed=config["split"]["seed"])
    device = choose_device(config["device"], log)
    runs = run_specs(config, dataset, seeds, lr=lr, **(overrides or {}))
    arch, training = architecture(config, dataset), training_config(config, dataset)
    log(f"{dataset} / {label}: {len(runs)} runs in one pack (seeds {seeds}), {len(data.y_train)} training rows, "
        f"{arch.kind.upper()}, up to {training.max_epochs} epochs, patience {training.patience}")
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    results = train_pack(data, method, runs, k=configuration.k, codec=codec, architecture=arch, training=training,
                         settings=settings, device=device, log=log, checkpoint=checkpoint)
    wall = time.perf_counter() - t0
    prov = provenance(device, wall, list(seeds), started, workflow_dir)
    recorded = {"architecture": dataclasses.asdict(arch), "training": dataclasses.asdict(training),
                "method": dataclasses.asdict(settings), "codec": config["codec"], "split": config["split"],
                "device_requested": config["device"]}
    code = config["datasets"][dataset].get("code", dataset)
    for result, path in zip(results, outputs):
        if Path(path).name != f"seed{result.spec.seed}.json":
            raise ValueError(f"output {path} does not match seed {result.spec.seed}")
        write_run(path, run_record(result, dataset=dataset, code=code, configuration=configuration, settings=recorded, provenance=prov))
        log(f"seed {result.spec.seed}: test MAE {result.metrics['test_mae']:.5g}, R2 {result.metrics['test_r2']:.4g}, "
            f"{result.epochs_trained} epochs (best {result.best_epoch})")
    log(f"done in {wall:.1f} s")
