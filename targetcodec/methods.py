"""The methods of the benchmark (section 4), each defined in one place: its names, the settings its
numbers depend on, where its target distribution comes from, its objective and its prediction.

Regression baselines predict z = f(x) in R^m. Every other method has a k-class head g_theta and
predicts the decoding mu^T softmax(g_theta(x)); they differ in the target codec and the objective.
Tables, figures, config checks and the workflow's rerun triggers all read this registry, so a new
method is one ``register(Method(...))`` call (in a module the config names under ``method_modules``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .specs import MethodSettings

# The method table is read by the workflow's bookkeeping jobs; torch is imported only when a method
# computes something (objectives, codec), so that those jobs start without it.


@dataclass(frozen=True)
class Method:
    name: str  # config key and file names
    label: str  # row label of Tables 3-5
    short: str  # legend of the figures
    uses_k: bool
    # Where the target distribution psi(y) comes from: None (regression), "hard" (eq. 2 one-hot),
    # "gaussian" (eq. 3), "pretrained" (frozen eq. 7 codec) or "end_to_end" (codec trained with eq. 8).
    codec: str | None
    # objective(out, y, psi, codec_params, hp, settings) -> per-sample loss [R, B]
    objective: Callable
    trains_decoder: bool = False  # mu is a trained parameter (eq. 8, eq. 9)
    # Config keys (dotted) its numbers depend on beyond the network and its training; a change reruns
    # this method's jobs only. A method that starts from the pre-trained codec also depends on "codec".
    reads: tuple[str, ...] = ()
    # The settings shown next to the label in the tables: {MethodSettings field: LaTeX symbol}.
    shown_settings: tuple[tuple[str, str], ...] = ()

    def display(self, k: int | None, settings: MethodSettings) -> str:
        """The row label of Tables 3-5: ``Soft Binning Classification $\\lambda_\\sigma = 0.5$ k = 25``."""
        name = self.label
        for field, symbol in self.shown_settings:
            name += f" ${symbol} = {getattr(settings, field):g}$"
        return name if k is None else f"{name} k = {k}"

    def output_size(self, k: int | None, m: int) -> int:
        return k if self.uses_k else m

    def needs_pretrained_codec(self, settings: MethodSettings) -> bool:
        return self.codec == "pretrained" or (
            self.codec == "end_to_end" and settings.end_to_end_codec_init == "pretrained"
        )

    def frozen_targets(self, codec, y, settings: MethodSettings):
        """psi(y) for the training targets when the codec is frozen (computed once, gathered per batch)."""
        from .codec import gaussian_encode, hard_binning_encode

        c = codec.centroids.to(y)
        if self.codec == "hard":
            # half-open bins on the m = 1 grid; the nearest centroid (argmin) for k-means++ (m > 1)
            on_grid = settings.hard_bins == "half_open" and codec.m == 1
            return hard_binning_encode(y, c, codec.spacing if on_grid else None)
        if self.codec == "gaussian":
            return gaussian_encode(y, c, settings.soft_binning_lambda_sigma * codec.spacing)
        if self.codec == "pretrained":
            return codec.encode(y)
        return None

    def fixed_decoder(self, codec):
        """The decoder of a frozen codec: bin midpoints c (section 2.2) or the pre-trained mu (section 3.3)."""
        if self.codec in ("hard", "gaussian"):
            return codec.centroids
        if self.codec == "pretrained":
            return codec.mu
        return None

    def trainable_codec(self, codec, settings: MethodSettings) -> dict:
        """Initial values of the codec parameters trained with the network (one copy per run)."""
        if self.codec == "end_to_end":
            return {"w_lin": codec.w_lin, "w_bias": codec.w_bias, "mu": codec.mu}
        if self.trains_decoder:  # Baseline 4 (eq. 9): mu as settings.softmax_decoder_init says
            from .codec import initial_softmax_decoder

            return {"mu": initial_softmax_decoder(codec, settings.softmax_decoder_init)}
        return {}

    def loss(self, out, y, psi, codec_params, hp, settings: MethodSettings):
        """Per-sample objective [R, B]. ``hp`` holds per-run lambdas shaped [R, 1]."""
        return self.objective(out, y, psi, codec_params, hp, settings)

    def predict(self, out, codec_params, fixed_decoder):
        import torch

        from .codec import decode

        if not self.uses_k:
            return out
        mu = codec_params["mu"] if "mu" in codec_params else fixed_decoder
        return decode(torch.softmax(out, dim=-1), mu)


def _least_squares(out, y, psi, codec_params, hp, settings):
    from . import objectives

    return objectives.least_squares_loss(y, out)


def _huber(out, y, psi, codec_params, hp, settings):
    from . import objectives

    return objectives.huber_loss(y, out, settings.huber_delta)


def _softmax_least_squares(out, y, psi, codec_params, hp, settings):
    from . import objectives

    return objectives.softmax_least_squares_loss(y, out, codec_params["mu"])


def _classification(out, y, psi, codec_params, hp, settings):
    from . import objectives

    return objectives.classification_loss(psi, out)


def _end_to_end(out, y, psi, codec_params, hp, settings):
    from . import objectives

    p = codec_params
    return objectives.end_to_end_loss(
        y,
        out,
        p["w_lin"],
        p["w_bias"],
        p["mu"],
        hp["lambda_auto"],
        hp["lambda_kl"],
        hp["lambda_pred"],
        settings.alpha,
        settings.kl_reduction,
    )


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (or replace one of the same name); returns it."""
    METHODS[method.name] = method
    return method


for _method in [
    Method("least_squares", "Least Squares", "Least Squares", uses_k=False, codec=None, objective=_least_squares),
    Method("huber", "Huber Loss", "Huber", uses_k=False, codec=None, objective=_huber, reads=("huber_delta",)),
    Method(
        "softmax_least_squares",
        "Least Squares w. Softmax",
        "LS w. Softmax",
        uses_k=True,
        codec=None,
        objective=_softmax_least_squares,
        trains_decoder=True,
        reads=("codec.weight_decay", "codec.weight_decay_mode", "codec.softmax_decoder_init"),
    ),
    Method(
        "hard_binning",
        "Hard Binning Classification",
        "Hard Binning",
        uses_k=True,
        codec="hard",
        objective=_classification,
        reads=("codec.hard_bins",),
    ),
    Method(
        "soft_binning",
        "Soft Binning Classification",
        "Soft Binning",
        uses_k=True,
        codec="gaussian",
        objective=_classification,
        reads=("codec.soft_binning_lambda_sigma",),
        shown_settings=(("soft_binning_lambda_sigma", "\\lambda_\\sigma"),),
    ),
    Method(
        "trained_codec",
        "Trained Encoder Classification",
        "Trained Encoder",
        uses_k=True,
        codec="pretrained",
        objective=_classification,
    ),
    Method(
        "end_to_end",
        "End to End",
        "End to End",
        uses_k=True,
        codec="end_to_end",
        objective=_end_to_end,
        trains_decoder=True,
        reads=("end_to_end", "codec.init_lambda_sigma", "codec.alpha", "codec.weight_decay", "codec.weight_decay_mode"),
    ),
]:
    register(_method)


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def import_method_modules(modules) -> None:
    """Import the modules that register methods of one's own (config key ``method_modules``)."""
    import os
    import sys

    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the workflow's working directory, as for Snakemake's own imports
    for module in modules or ():
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"config key 'method_modules': cannot import {module!r}: {e}") from e
