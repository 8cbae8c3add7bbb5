"""Rule figures: Figures 3-7 from the aggregated metrics."""

from pathlib import Path

from targetcodec.report.figures import figure_averaged, figure_normalised
from targetcodec.io import read_parquet
from targetcodec.joblog import job_log

with job_log(snakemake.log[0]) as log:  # noqa: F821
    frame = read_parquet(snakemake.input[0])  # noqa: F821
    frame = frame[frame["configuration"].isin(snakemake.params.configurations)]  # noqa: F821
    folder = Path(snakemake.output[0]).parent  # noqa: F821
    codes, k = snakemake.params.codes, snakemake.params.k  # noqa: F821
    figure_normalised(frame, "mae", k, folder / "figure3_mae_normalised", codes, 3)
    figure_averaged(frame, ["mae"], k, folder / "figure4_top_mae_average", "Figure 4 (top): test MAE averaged over datasets")
    figure_averaged(frame, ["rmse", "r2"], k, folder / "figure5_rmse_r2_average", "Figure 5: test rMSE and $R^2$ averaged over datasets")
    figure_normalised(frame, "rmse", k, folder / "figure6_rmse_normalised", codes, 6)
    figure_normalised(frame, "r2", k, folder / "figure7_r2_normalised", codes, 7)
    log(f"wrote figures 3-7 to {folder}")
