"""The seven methods of the benchmark (section 4), as data the trainer can run.

Regression baselines predict z = f(x) in R^m. Every other method has a k-class head g_theta and
predicts the decoding mu^T softmax(g_theta(x)); they differ in the target codec and the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

from .specs import MethodSettings  # noqa: F401 (re-exported)

# The method table is read by the workflow's bookkeeping jobs; torch is imported only when a method
# computes something (objectives, codec), so that those jobs start without it.


@dataclass(frozen=True)
class Method:
    name: str
    label: str  # as in Tables 3-5
    uses_k: bool
    # Where the target distribution psi(y) comes from: None (regression), "hard" (eq. 2 one-hot),
    # "gaussian" (eq. 3), "pretrained" (frozen eq. 7 codec) or "end_to_end" (codec trained with eq. 8).
    codec: str | None
    trains_decoder: bool = False  # mu is a trained parameter (eq. 8, eq. 9)

    def output_size(self, k: int | None, m: int) -> int:
        return k if self.uses_k else m

    def needs_pretrained_codec(self, settings: MethodSettings) -> bool:
        return self.codec == "pretrained" or (self.codec == "end_to_end" and settings.end_to_end_codec_init == "pretrained")

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
        from . import objectives

        if self.name == "least_squares":
            return objectives.least_squares_loss(y, out)
        if self.name == "huber":
            return objectives.huber_loss(y, out, settings.huber_delta)
        if self.name == "softmax_least_squares":
            return objectives.softmax_least_squares_loss(y, out, codec_params["mu"])
        if self.codec == "end_to_end":
            p = codec_params
            return objectives.end_to_end_loss(
                y, out, p["w_lin"], p["w_bias"], p["mu"], hp["lambda_auto"], hp["lambda_kl"], hp["lambda_pred"], settings.alpha
            )
        return objectives.classification_loss(psi, out)

    def predict(self, out, codec_params, fixed_decoder):
        import torch

        from .codec import decode

        if not self.uses_k:
            return out
        mu = codec_params["mu"] if "mu" in codec_params else fixed_decoder
        return decode(torch.softmax(out, dim=-1), mu)


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("least_squares", "Least Squares", uses_k=False, codec=None),
        Method("huber", "Huber Loss", uses_k=False, codec=None),
        Method("softmax_least_squares", "Least Squares w. Softmax", uses_k=True, codec=None, trains_decoder=True),
        Method("hard_binning", "Hard Binning Classification", uses_k=True, codec="hard"),
        Method("soft_binning", "Soft Binning Classification", uses_k=True, codec="gaussian"),
        Method("trained_codec", "Trained Encoder Classification", uses_k=True, codec="pretrained"),
        Method("end_to_end", "End to End", uses_k=True, codec="end_to_end", trains_decoder=True),
    ]
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None
