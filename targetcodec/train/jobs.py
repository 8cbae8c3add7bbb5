"""Training jobs of the workflow: a pack of final seeds of one (dataset, configuration), or a sweep
pack (sweep seeds x grid values of one hyper-parameter) that also selects the best value, or both
for one or several configurations in one job.

A job's context (``JobContext``: its data, pre-trained codec, device and log) is made once at its
start and passed to one entry point per rule family: ``train_configuration`` (train*),
``sweep_configuration`` (sweep_lr, sweep_lambda_*), ``sweep_and_train`` and ``sweep_and_train_group``
(sweep_and_train_k5, ...)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..codec import Codec
from ..io import atomic_path, atomic_write_json, read_json, write_parquet
from ..pack import SplitData, codec_for_method, train_pack
from .devices import choose_device, claimed_gpus
from .failures import check_finished_run, failure_of, mean_predictor_val_mae
from .records import provenance, run_record, write_run
from .settings import Runtime, TrainingJob, pack_name

SWEPT = ("lr", "lambda_kl", "lambda_auto")


def read_sweep_choices(paths) -> tuple[dict[str, float], list[str]]:
    """Values chosen by earlier sweeps, {param: value}, from selected/<param>/... files, and why any
    of those sweeps failed (a learning-rate sweep whose every value failed names the configured rate
    as its value and says why in ``failed``). Each file is read once."""
    chosen, failed = {}, []
    for path in paths or []:
        record = read_json(path)
        try:
            chosen[record["param"]] = float(record["value"])
        except (KeyError, TypeError, ValueError) as e:
            from ..io import damaged

            raise damaged(path, e) from e
        if record.get("failed"):
            failed.append(record["failed"])
    return chosen, failed


def read_selected(paths) -> dict[str, float]:
    """Values chosen by earlier sweeps: {param: value} from selected/<param>/... files."""
    return read_sweep_choices(paths)[0]


def _failures(results, bound: float, what, log) -> list[str | None]:
    """Per run, why it failed (failures.py; ``bound``: the validation MAE of predicting the training
    mean) or None; logs the failed runs by seed and value, and stops if a run that did not fail has
    a NaN or infinite metric."""
    failures = [failure_of(r.metrics["val_mae"], bound) for r in results]
    for r, failure in zip(results, failures):
        check_finished_run(r.metrics, failure, f"{what}, seed {r.spec.seed}")
    failed = [(r, f) for r, f in zip(results, failures) if f]
    log(
        f"{len(failed)} of {len(results)} runs failed (bound: validation MAE of predicting the training mean, {bound:.4g})"
        + "".join(
            f"\n  FAILED run seed {r.spec.seed} (lr {r.spec.lr:g}, lambda_kl {r.spec.lambda_kl:g}, "
            f"lambda_auto {r.spec.lambda_auto:g}): {f}"
            for r, f in failed
        )
    )
    return failures


@dataclass(frozen=True)
class JobContext:
    """What a training job reads once at its start, whatever it trains: the prepared data, the
    pre-trained codec (eq. 7) where it has one, the device, its log and the folder whose git commit
    the run files record. Made once per job (``JobContext.load``, or ``rule_job`` for a rule's job)
    and passed to every step, so that a job of several steps loads nothing twice."""

    data: SplitData
    device: Any  # torch.device
    log: Callable[[str], None] = print
    pretrained: Codec | None = None
    workflow_dir: str = "."

    @classmethod
    def load(cls, data, codec=None, runtime: Runtime | None = None, log=print) -> JobContext:
        """The context of a job: ``data`` and ``codec`` are the paths of the prepared data and the
        pre-trained codec (None where the job has none); ``runtime`` the device and workflow folder."""
        runtime = runtime or Runtime()
        return cls(
            data=SplitData.load(data),
            device=choose_device(runtime.device, log),
            log=log,
            pretrained=Codec.load(codec) if codec else None,
            workflow_dir=str(runtime.workflow_dir),
        )

    def codec_for(self, job: TrainingJob) -> Codec | None:
        """The codec a configuration's method starts from (``codec_for_method``)."""
        return codec_for_method(
            job.method,
            self.data.y_train,
            job.configuration.k,
            job.settings,
            self.pretrained,
            init_lambda_sigma=job.init_lambda_sigma,
            seed=job.codec_seed,
        )


@contextlib.contextmanager
def rule_job(snakemake):
    """A workflow rule's training job (rules train*, sweep*), started as every one starts: its log,
    its checkpoint's lock, its GPUs claimed from the local pool, its threads, then its context (``input.data``,
    ``input.codec`` if the rule has one, ``params.runtime``)."""
    from ..joblog import job_log, set_threads
    from ..locks import checkpoint_lock

    checkpoint = snakemake.params.get("checkpoint") or snakemake.params.get("checkpoints")
    # the checkpoint's lock first, held to the end: another live job on it stops this one before it reads it
    with (
        job_log(snakemake.log[0]) as log,
        checkpoint_lock(checkpoint, log),
        claimed_gpus(snakemake.resources.get("gpu", 0), log=log),
    ):
        set_threads(snakemake.threads)
        yield JobContext.load(snakemake.input.data, snakemake.input.get("codec") or None, snakemake.params.runtime, log)


def _recorded_settings(job: TrainingJob) -> dict:
    return {
        "architecture": dataclasses.asdict(job.architecture),
        "training": dataclasses.asdict(job.training),
        "method": dataclasses.asdict(job.settings),
        "job": job.job,
        "device_requested": job.device,
    }


def _train(context: JobContext, job: TrainingJob, runs, codec, checkpoint):
    return train_pack(
        context.data,
        job.method,
        runs,
        k=job.configuration.k,
        codec=codec,
        architecture=job.architecture,
        training=job.training,
        settings=job.settings,
        device=context.device,
        log=context.log,
        checkpoint=checkpoint,
    )


def train_configuration(
    context: JobContext,
    job: TrainingJob,
    seeds: list[int],
    outputs: list[str],
    selected=(),
    checkpoint=None,
    codec: Codec | None = None,
) -> None:
    """Rule train: train ``seeds`` of one (dataset, configuration) as one pack; write ``outputs``
    (one per seed, same order). Hyper-parameters chosen by sweeps (the ``selected`` files) override
    the job's defaults. ``codec``: the one the method starts from, where the job has made it already."""
    if len(outputs) != len(seeds):
        raise ValueError(f"{len(outputs)} output files for {len(seeds)} seeds")
    log, data = context.log, context.data
    codec = codec if codec is not None else context.codec_for(job)
    chosen, sweep_failed = read_sweep_choices(selected)
    if chosen:
        log(f"hyper-parameters selected by sweeps: {chosen}")
    if sweep_failed:
        log(f"every run fails with its configuration: {sweep_failed[0]}")
    runs = job.run_specs(seeds, **chosen)
    label = job.configuration.label
    log(
        f"{job.dataset} / {label}: {len(runs)} runs in one pack (seeds {seeds}), {len(data.y_train)} training rows, "
        f"{job.architecture.kind.upper()}, up to {job.training.max_epochs} epochs, patience {job.training.patience}, lr {runs[0].lr:g}"
    )
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    results = _train(context, job, runs, codec, checkpoint)
    wall = time.perf_counter() - t0
    prov = provenance(context.device, wall, list(seeds), started, context.workflow_dir)
    recorded = _recorded_settings(job)
    bound = mean_predictor_val_mae(data.y_train, data.y_val)
    failures = _failures(results, bound, f"dataset {job.dataset!r}, configuration {label!r}", log)
    if sweep_failed:  # trained for the record only: no value of the sweep could be chosen
        failures = [
            f"its learning-rate sweep failed: {sweep_failed[0]}" + (f"; the run itself: {f}" if f else "")
            for f in failures
        ]
    for result, path, failure in zip(results, outputs, failures):
        if Path(path).name != f"seed{result.spec.seed}.json":
            raise ValueError(f"output {path} does not match seed {result.spec.seed}")
        write_run(
            path,
            run_record(
                result,
                dataset=job.dataset,
                code=job.code,
                configuration=job.configuration,
                settings=recorded,
                provenance=prov,
                failure=failure,
                mean_predictor_val_mae=bound,
            ),
        )
        log(
            f"seed {result.spec.seed}: test MAE {result.metrics['test_mae']:.5g}, R2 {result.metrics['test_r2']:.4g}, "
            f"{result.epochs_trained} epochs (best {result.best_epoch})" + (f", FAILED: {failure}" if failure else "")
        )
    log(f"done in {wall:.1f} s")


def sweep_configuration(
    context: JobContext,
    job: TrainingJob,
    param: str,
    grid: list[float],
    seeds: list[int],
    out_runs,
    out_selected,
    selected=(),
    checkpoint=None,
    codec: Codec | None = None,
) -> dict:
    """Rules sweep_lr, sweep_lambda_kl, sweep_lambda_auto: train every (seed, grid value) of one
    sweep as one pack, write a row per run to ``out_runs`` (parquet) and the value with the lowest
    mean validation MAE to ``out_selected`` (JSON). Values chosen by earlier sweeps (the ``selected``
    files) hold for the other parameters."""
    if param not in SWEPT:
        raise ValueError(f"cannot sweep {param!r}; sweepable: {', '.join(SWEPT)}")
    log, data = context.log, context.data
    codec = codec if codec is not None else context.codec_for(job)
    dataset, label, configuration = job.dataset, job.configuration.label, job.configuration
    chosen = read_selected(selected)
    chosen.pop(param, None)
    # a lambda that the reported runs take from its own sweep ("selected") is not known yet when the
    # learning rate is swept: that sweep uses the paper's value
    runs = [
        spec for value in grid for spec in job.run_specs(seeds, unselected="paper", **(chosen | {param: float(value)}))
    ]
    others = {
        name: getattr(runs[0], name) for name in ("lr", "lambda_kl", "lambda_auto", "lambda_pred") if name != param
    }
    log(
        f"sweep of {param} for {dataset} / {label}: {len(grid)} values x {len(seeds)} seeds = {len(runs)} runs in one pack, "
        f"with {others}"
    )
    t0 = time.perf_counter()
    results = _train(context, job, runs, codec, checkpoint)
    wall = time.perf_counter() - t0
    failures = _failures(
        results,
        mean_predictor_val_mae(data.y_train, data.y_val),
        f"sweep of {param} for dataset {dataset!r}, configuration {label!r}",
        log,
    )
    rows = []
    for r, failure in zip(results, failures):
        rows.append(
            {
                "dataset": dataset,
                "code": job.code,
                "method": configuration.method,
                "k": configuration.k,
                "configuration": label,
                "param": param,
                "seed": r.spec.seed,
                **dataclasses.asdict(r.spec),
                "epochs_trained": r.epochs_trained,
                "best_epoch": r.best_epoch,
                "diverged": r.diverged,
                "failed": failure is not None,
                "failure": failure or "",
                **r.metrics,
                "wall_seconds": wall,
                "pack_size": len(runs),
            }
        )
    import pandas as pd  # here, not at the top: a training job starts without pandas (about 0.3 s)

    from .selection import NothingToSelect, select_best

    frame = pd.DataFrame(rows)
    frame["k"] = frame["k"].astype("Int64")
    where = {"dataset": dataset, "configuration": label, "grid": [float(v) for v in grid]}
    # selection first: a lambda sweep whose every value failed stops here and writes nothing (Table 6
    # would print a value nobody chose); a learning-rate sweep fails its configuration instead: the
    # reported runs train at the configured rate for the record and are all failed (the workflow,
    # and every other configuration, go on; the paper's baseline 4 collapses on Ailerons at any rate)
    try:
        selection = select_best(frame, param) | where
    except NothingToSelect as e:
        if param != "lr":
            raise
        selection = {"param": param, "value": float(job.run_defaults["lr"]), "failed": str(e)} | where
        log(f"FAILED: {e}; the reported runs train at the configured lr = {selection['value']:g} and count as failed")
    write_parquet(frame, out_runs)
    atomic_write_json(out_selected, selection)
    if "failed" not in selection:
        log(
            f"selected {param} = {selection['value']:g} (mean validation MAE per value: {selection['mean_val_mae']}), "
            f"{wall:.1f} s"
        )
    return selection


def sweep_and_train(
    context: JobContext,
    job: TrainingJob,
    grid: list[float],
    sweep_seeds: list[int],
    seeds: list[int],
    outputs: ConfigurationFiles,
    checkpoints,
) -> None:
    """Rule sweep_and_train: a configuration's learning-rate sweep and its reported runs in one job:
    one start of Python, torch and the data where two jobs (``sweep_configuration``, then
    ``train_configuration`` at the selected rate) would pay two. Same results as the two jobs.

    ``checkpoints``: a folder for both packs' checkpoints and the finished sweep, which is kept there
    until the reported runs are written: a job killed after its sweep does not sweep again."""
    codec = context.codec_for(job)
    folder = Path(checkpoints)
    kept_runs, kept_selected = folder / "lr_sweep.parquet", folder / "lr_sweep.json"
    fingerprint = repr((job.job, [float(v) for v in grid], list(sweep_seeds)))
    if kept_selected.exists():
        kept = read_json(kept_selected)
        if kept.get("fingerprint") != fingerprint:
            raise RuntimeError(
                f"finished sweep {kept_selected} belongs to other settings; delete {folder} to start again"
            )
        with atomic_path(outputs.sweep) as tmp:
            shutil.copyfile(kept_runs, tmp)
        atomic_write_json(outputs.selected, kept["selection"])
        context.log(f"learning-rate sweep finished before this job was stopped: taken from {folder}")
    else:
        selection = sweep_configuration(
            context,
            job,
            "lr",
            grid,
            sweep_seeds,
            outputs.sweep,
            outputs.selected,
            checkpoint=folder / "lr_sweep.ckpt",
            codec=codec,
        )
        with atomic_path(kept_runs) as tmp:
            shutil.copyfile(outputs.sweep, tmp)
        atomic_write_json(kept_selected, {"fingerprint": fingerprint, "selection": selection})
    train_configuration(
        context,
        job,
        seeds,
        list(outputs.runs),
        selected=[outputs.selected],
        checkpoint=folder / f"{pack_name(seeds)}.ckpt",
        codec=codec,
    )
    kept_runs.unlink()
    kept_selected.unlink()
    with contextlib.suppress(OSError):  # the folder, unless something else is kept in it
        folder.rmdir()


def sweep_and_train_group(
    context: JobContext,
    jobs: list[TrainingJob],
    grid: list[float],
    sweep_seeds: list[int],
    seeds: list[int],
    outputs: list[ConfigurationFiles],
    checkpoints,
    codec: CodecPretraining | None = None,
) -> None:
    """Rules sweep_and_train_k5, ... (sweeps.lr.job_per: k): several configurations of one dataset
    (those with the same k) in one job, one after the other, each as ``sweep_and_train`` trains it
    alone (the same files and numbers): one start of Python, torch and the data for all of them.
    ``codec``: the codec (eq. 7) the job pre-trains first, where one of its configurations needs it.

    Each configuration's files are also kept in ``checkpoints``/done/<label>/ until the whole job has
    finished, so that a job killed or preempted half-way trains again only what it had not finished
    (Snakemake deletes the outputs of an incomplete job before it runs it again)."""
    if codec is not None:
        context = codec.pretrain(context, jobs[0].dataset)
    folder = Path(checkpoints)
    for number, (job, out) in enumerate(zip(jobs, outputs, strict=True), start=1):
        label = job.configuration.label
        files = out.files()
        kept = folder / "done" / label
        fingerprint = repr((job.job, [float(v) for v in grid], list(sweep_seeds), list(seeds)))
        if _restore_finished(kept, fingerprint, files):
            context.log(
                f"configuration {number}/{len(jobs)}, {label}: finished before this job was stopped, taken from {kept}"
            )
            continue
        context.log(f"configuration {number}/{len(jobs)}: {label}")
        sweep_and_train(context, job, grid, sweep_seeds, seeds, out, folder / label)
        _keep_finished(kept, fingerprint, files)
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class ConfigurationFiles:
    """What a sweep_and_train job writes for one configuration: a run file per seed, the
    learning-rate sweep's table and its choice."""

    runs: list[str]
    sweep: str
    selected: str

    def files(self) -> list[str]:
        return [*map(str, self.runs), str(self.sweep), str(self.selected)]

    @classmethod
    def of_group(cls, runs: list[str], sweeps: list[str], selected: list[str]) -> list[ConfigurationFiles]:
        """A job group's outputs (its configurations' run files one after the other), per configuration."""
        n = len(runs) // len(sweeps)
        return [
            cls(list(runs[i * n : (i + 1) * n]), s, c) for i, (s, c) in enumerate(zip(sweeps, selected, strict=True))
        ]


@dataclass(frozen=True)
class CodecPretraining:
    """The codec (eq. 7) a job group pre-trains before its configurations (rule pretrain_codec's
    work, in the job): k, the config's ``codec`` settings, the k-means++ seed and the two files."""

    k: int
    settings: dict
    seed: int
    codec: str
    report: str

    def pretrain(self, context: JobContext, dataset: str) -> JobContext:
        """The context with the codec pre-trained, written and read back as a job reading it would."""
        from ..codec import pretrain_codec_files

        pretrain_codec_files(
            context.data.y_train,
            self.k,
            self.settings,
            self.seed,
            self.codec,
            self.report,
            dataset,
            log=context.log,
        )
        return dataclasses.replace(context, pretrained=Codec.load(self.codec))


def _keep_finished(folder: Path, fingerprint: str, files: list[str]) -> None:
    """Copies of a finished configuration's files, and the settings they were made with (written last)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        with atomic_path(folder / f"{i}{Path(path).suffix}") as tmp:
            shutil.copyfile(path, tmp)
    atomic_write_json(folder / "finished.json", {"fingerprint": fingerprint, "files": [str(p) for p in files]})


def _restore_finished(folder: Path, fingerprint: str, files: list[str]) -> bool:
    """Put back the files ``_keep_finished`` kept, if they were made with these settings (else
    delete them: the configuration trains again)."""
    record = folder / "finished.json"
    if not record.exists():
        return False
    kept = read_json(record)
    if kept.get("fingerprint") != fingerprint or kept.get("files") != [str(p) for p in files]:
        shutil.rmtree(folder)  # made with other settings: trained again
        return False
    for i, path in enumerate(files):
        with atomic_path(path) as tmp:
            shutil.copyfile(folder / f"{i}{Path(path).suffix}", tmp)
    return True
