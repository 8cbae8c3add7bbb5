"""Bad configuration stops the workflow before any job, with a message that names the key."""

import pytest
import yaml

from workflow_helpers import copy_workflow, snakemake


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("config"), git=False)


@pytest.mark.slow  # runs Snakemake
@pytest.mark.parametrize(
    "override, key, words",
    [
        (
            "methods=[least_squares,gradient_boosting]",
            "methods[1]",
            "unknown method 'gradient_boosting'; known: least_squares",
        ),
        ("k_values=[1,5]", "k_values[0]", "less than the minimum of 2"),
        ("seeds=-3", "seeds", "-3"),
        ("pack_size=0", "pack_size", "0"),
        ("run_datasets=[no_such_dataset]", "run_datasets", "no_such_dataset"),
        ("split={train: 0.7, val: 0.1, test: 0.1}", "split", "must be 1"),
        ("training={mlp: {batch_size: 0}}", "training.mlp.batch_size", "less than the minimum of 1"),
        ("device=tpu", "device", "does not match"),
        ("figures={k: 7}", "figures.k", "not one of k_values"),
        ("unknown_option=3", "unknown_option", "unknown key"),
    ],
)
def test_bad_value_names_its_key(workdir, override, key, words):
    proc = snakemake(workdir, "-n", "--configfile", "presets/tiny.yaml", "--config", override, check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "Invalid configuration" in err, err
    assert (f"config key '{key}'" if key != "config" else "Invalid configuration: config: ") in err, err
    assert words in err, err


@pytest.mark.slow  # runs Snakemake
def test_unknown_dataset_source_names_the_dataset(workdir):
    (workdir / "bad.yaml").write_text("datasets:\n  mine: {source: ftp, id: 3}\nrun_datasets: [mine]\n")
    proc = snakemake(workdir, "-n", "--configfile", "presets/tiny.yaml", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "config key 'datasets.mine.source': 'ftp' is not one of" in proc.stdout + proc.stderr


@pytest.mark.slow  # runs Snakemake
def test_source_without_its_required_key(workdir):
    (workdir / "bad2.yaml").write_text("datasets:\n  mine: {source: file, target: y}\nrun_datasets: [mine]\n")
    proc = snakemake(workdir, "-n", "--configfile", "presets/tiny.yaml", "bad2.yaml", check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "config key 'datasets.mine'" in err and "'path' is a required property" in err


@pytest.mark.slow  # runs Snakemake
def test_nothing_is_written_on_a_bad_config(workdir):
    snakemake(workdir, "-n", "--configfile", "presets/tiny.yaml", "--config", "seeds=-1", check=False)
    assert not (workdir / "results").exists()


def test_the_training_jobs_of_a_dataset_are_one_per_k():
    """sweeps.lr.job_per: k: every configuration with the same k in one job, in the grid's order;
    the paper's 17 configurations in 4 jobs (and the k sweep's extra k in jobs of their own)."""
    from targetcodec.train.settings import NO_K, configurations, job_groups

    methods = ["least_squares", "huber", "hard_binning", "soft_binning", "end_to_end"]
    groups = job_groups(configurations(methods, [5, 25]) + configurations(["soft_binning"], [45]))
    assert groups == {
        NO_K: ["least_squares", "huber"],
        "k5": ["hard_binning-k5", "soft_binning-k5", "end_to_end-k5"],
        "k25": ["hard_binning-k25", "soft_binning-k25", "end_to_end-k25"],
        "k45": ["soft_binning-k45"],
    }
    paper = configurations([*methods, "softmax_least_squares", "trained_codec"], [5, 15, 25])
    assert len(paper) == 17 and len(job_groups(paper)) == 4


def test_grid_by_method_places_one_method_on_its_own_grid():
    """codec.grid_by_method moves only the named method's classes (and reruns only its jobs); the
    end-to-end option kl_reduction reaches the method settings of end to end's jobs only."""
    from targetcodec.specs import MethodSettings
    from targetcodec.train.settings import TrainingJob, job_params

    config = yaml.safe_load(open("config.yaml"))
    config["codec"]["grid_by_method"] = {"hard_binning": "midpoints"}
    config["end_to_end"]["kl_reduction"] = "sum"
    hard = TrainingJob.from_params(job_params(config, "cpu_act", "hard_binning-k5"))
    soft = TrainingJob.from_params(job_params(config, "cpu_act", "soft_binning-k5"))
    e2e = TrainingJob.from_params(job_params(config, "cpu_act", "end_to_end-k5"))
    assert (hard.settings.grid, soft.settings.grid, e2e.settings.grid) == ("midpoints", "endpoints", "endpoints")
    assert e2e.settings.kl_reduction == "sum"  # hard binning reads no end_to_end key: the library's default
    assert hard.settings.kl_reduction == MethodSettings().kl_reduction == "mean"
    config["codec"]["grid_by_method"] = {}
    assert job_params(config, "cpu_act", "soft_binning-k5") == soft.job
