# Beyond Binning: Soft Task Reformulation for Deep Regression (AISTATS 2026), the whole benchmark.
#
#   snakemake --cores all                                  # the paper's grid (config.yaml)
#   snakemake --cores all --configfile presets/demo.yaml   # offline demo, minutes on a laptop
#   snakemake --profile profiles/slurm                     # on a SLURM GPU cluster (docs/slurm.md)
#   snakemake --profile profiles/local-gpu                 # one machine, a GPU per training job
#   snakemake --cores all --config 'run_datasets=[osv5m]' osv5m_dir=/path   # OpenStreetView-5M, Table 2
#
# Rules live in workflow/rules/, the scripts they run in workflow/scripts/, and the method itself
# in the importable package targetcodec/.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/codec.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/osv5m.smk"


rule all:
    default_target: True
    input:
        all_outputs() + PAPER_COMPARISON_OUTPUTS + osv5m_outputs(),
