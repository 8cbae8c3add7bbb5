"""targetcodec: regression through target codecs (Stewart, Bach and Berthet, "Beyond Binning: Soft
Task Reformulation for Deep Regression", AISTATS 2026).

The library has no Snakemake dependency:

- ``targetcodec.codec``: target encoders and decoders (eq. 2-7) and their initialisation (section 3.3);
- ``targetcodec.objectives``: the training objectives of every method (eq. 1, 2, 8, 9);
- ``targetcodec.methods``: the seven methods of the benchmark;
- ``targetcodec.pack``: batched training of a pack of runs (seeds, sweep values) as one model;
- ``targetcodec.estimator``: a scikit-learn style regressor for one's own data;
- ``targetcodec.benchmark``: data sources, preparation, results, tables and figures of the workflow.
"""

from .codec import Codec, initial_codec, pretrain_codec
from .estimator import TargetCodecRegressor
from .methods import METHODS, Method, MethodSettings, get_method
from .nn import Architecture
from .pack import RunResult, RunSpec, SplitData, TrainingConfig, codec_for_method, train_pack

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Codec",
    "METHODS",
    "Method",
    "MethodSettings",
    "RunResult",
    "RunSpec",
    "SplitData",
    "TargetCodecRegressor",
    "TrainingConfig",
    "codec_for_method",
    "get_method",
    "initial_codec",
    "pretrain_codec",
    "train_pack",
]
