"""Every table and figure of the report, in one registry: its name (the file stem, and its caption
``workflow/report/<name>.rst``), what it is made from and the function that makes it.

The workflow builds each entry with one rule pattern per kind (workflow/rules/report.smk), so that a
new table or figure is one entry here and one caption file, and figures build in parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

EXTENSIONS = {"table": ("md", "csv", "tex"), "figure": ("png", "pdf")}
IN_REPORT = {"table": "csv", "figure": "png"}  # the file of each kind that the HTML report shows


@dataclass(frozen=True)
class ReportSettings:
    """What the report rules pass to every table and figure (the rules' params)."""

    datasets: list[str] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)  # dataset key -> column name in the tables
    configurations: list[str] = field(default_factory=list)  # the rows of Tables 3-5, in order
    labels: dict[str, str] = field(default_factory=dict)  # configuration -> row label (with its method's settings)
    k: int = 25  # the k of Figures 3-7
    alpha: float = 0.05  # significance level of the paired test
    reference: str = "least_squares"  # the method every configuration is tested against
    k_sweep_methods: list[str] = field(default_factory=list)  # Figure 4 (centre)
    lambda_kl_dataset: str = ""  # Figure 4 (bottom)
    lambda_sigma: float = 0.5  # soft binning's sigma / delta_mu, Figures 2 and 8
    seed: int = 0  # Figures 2 and 9: the learnt codec's seed
    method_modules: list[str] = field(default_factory=list)  # where methods of one's own are registered

    def __post_init__(self):
        from ..methods import import_method_modules

        import_method_modules(self.method_modules)


@dataclass(frozen=True)
class Output:
    name: str
    kind: str  # "table" or "figure"
    source: str | None  # "metrics" (metrics.parquet), "sweeps" (sweeps.parquet), or None
    make: Callable  # make(frame or None, stem, settings: ReportSettings, log) writes the files
    shows: str = ""  # the sweep it shows, if any ("lambda_kl" or "k"): built only when that sweep runs

    def files(self, folder: str) -> list[str]:
        return [f"{folder}/{self.kind}s/{self.name}.{ext}" for ext in EXTENSIONS[self.kind]]


def _reported(frame, s: ReportSettings):
    """The runs of Tables 3-5 (the k sweep's extra k are for Figure 4, centre, only)."""
    return frame[frame["configuration"].isin(s.configurations)]


def _metric_table(metric: str) -> Callable:
    def make(frame, stem, s: ReportSettings, log):
        from .significance import significance_markers
        from .tables import significance_note, write_table

        frame = _reported(frame, s)
        markers = significance_markers(frame, metric, s.alpha, higher_is_better=(metric == "r2"), reference=s.reference)
        write_table(
            frame,
            metric,
            stem,
            s.codes,
            s.datasets,
            markers=markers,
            note=significance_note(frame, s.alpha, s.reference),
            labels=s.labels,
        )
        log(f"{frame['configuration'].nunique()} configurations, {frame['dataset'].nunique()} datasets")

    return make


def _lambda_table(sweeps, stem, s: ReportSettings, log):
    from .tables import write_lambda_table

    best = write_lambda_table(sweeps, stem, s.codes, s.datasets)
    log(f"{len(best)} cells")


def _normalised(metric: str, number: int) -> Callable:
    def make(frame, stem, s: ReportSettings, log):
        from .figures import figure_normalised

        figure_normalised(_reported(frame, s), metric, s.k, stem, s.codes, number)

    return make


def _averaged(metrics: list[str], title: str) -> Callable:
    def make(frame, stem, s: ReportSettings, log):
        from .figures import figure_averaged

        figure_averaged(_reported(frame, s), metrics, s.k, stem, title, s.codes, log)

    return make


def _k_figure(frame, stem, s: ReportSettings, log):
    from .figures import figure_k

    figure_k(frame, s.k_sweep_methods, stem)


def _lambda_figure(sweeps, stem, s: ReportSettings, log):
    from .figures import figure_lambda_kl

    swept = list(dict.fromkeys(sweeps.loc[sweeps["param"] == "lambda_kl", "dataset"]))
    dataset = s.lambda_kl_dataset if s.lambda_kl_dataset in swept else swept[0]
    if dataset != s.lambda_kl_dataset:
        log(f"sweeps.lambda_kl.figure_dataset {s.lambda_kl_dataset!r} is not in this run; showing {dataset!r} instead")
    figure_lambda_kl(sweeps, dataset, s.codes.get(dataset, dataset), stem)


def _encoder_figure(which: str) -> Callable:
    def make(_, stem, s: ReportSettings, log):
        from . import encoder_figures

        encoder_figures.FIGURES[which](stem, seed=s.seed, lambda_sigma=s.lambda_sigma)

    return make


OUTPUTS: dict[str, Output] = {
    o.name: o
    for o in [
        Output("table3_mae", "table", "metrics", _metric_table("mae")),
        Output("table4_rmse", "table", "metrics", _metric_table("rmse")),
        Output("table5_r2", "table", "metrics", _metric_table("r2")),
        Output("table6_lambda_kl", "table", "sweeps", _lambda_table, shows="lambda_kl"),
        Output("figure2_encoders", "figure", None, _encoder_figure("figure2")),
        Output("figure3_mae_normalised", "figure", "metrics", _normalised("mae", 3)),
        Output(
            "figure4_top_mae_average",
            "figure",
            "metrics",
            _averaged(["mae"], "Figure 4 (top): test MAE averaged over datasets"),
        ),
        Output("figure4_centre_k", "figure", "metrics", _k_figure, shows="k"),
        Output("figure4_bottom_lambda_kl", "figure", "sweeps", _lambda_figure, shows="lambda_kl"),
        Output(
            "figure5_rmse_r2_average",
            "figure",
            "metrics",
            _averaged(["rmse", "r2"], "Figure 5: test rMSE and $R^2$ averaged over datasets"),
        ),
        Output("figure6_rmse_normalised", "figure", "metrics", _normalised("rmse", 6)),
        Output("figure7_r2_normalised", "figure", "metrics", _normalised("r2", 7)),
        Output("figure8_fixed_grid_encoder", "figure", None, _encoder_figure("figure8")),
        Output("figure9_learnt_encoder", "figure", None, _encoder_figure("figure9")),
    ]
}


def register(output: Output) -> Output:
    """Add a table or figure (or replace one of the same name); it needs a caption file too."""
    OUTPUTS[output.name] = output
    return output
