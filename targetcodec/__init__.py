"""targetcodec: regression through target codecs (Stewart, Bach and Berthet, "Beyond Binning: Soft
Task Reformulation for Deep Regression", AISTATS 2026).

The library has no Snakemake dependency:

- ``targetcodec.codec``: target encoders and decoders (eq. 2-7) and their initialisation (section 3.3);
- ``targetcodec.objectives``: the training objectives of every method (eq. 1, 2, 8, 9);
- ``targetcodec.methods``: the seven methods of the benchmark;
- ``targetcodec.pack``: batched training of a pack of runs (seeds, sweep values) as one model;
- ``targetcodec.estimator``: a scikit-learn style regressor for one's own data;
The workflow's stages, each a sub-package mirroring workflow/rules/ (they need the ``workflow``
extra): ``targetcodec.data`` (sources, raw-data cache, preparation), ``targetcodec.train``
(settings, training and sweep jobs, devices) and ``targetcodec.report`` (aggregation, tables, figures).
"""

import importlib

# Attributes are imported on first use, so that importing a torch-free part of the package (data
# preparation, tables, figures) does not pay for importing torch (about 1.5 s per workflow job).
_EXPORTS = {
    "Codec": "codec",
    "initial_codec": "codec",
    "pretrain_codec": "codec",
    "TargetCodecRegressor": "estimator",
    "METHODS": "methods",
    "Method": "methods",
    "MethodSettings": "methods",
    "get_method": "methods",
    "Architecture": "nn",
    "SplitData": "data",
    "RunResult": "pack",
    "RunSpec": "pack",
    "TrainingConfig": "pack",
    "codec_for_method": "pack",
    "train_pack": "pack",
    "train_pack_with_predictor": "pack",
}


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "train_pack_with_predictor",
]
