"""The settings of a run, of a method and of training, and a run's result: plain dataclasses without
torch, so that the workflow's bookkeeping (config checks, tables, figures) starts quickly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Architecture:
    """MLP (tabular) or CNN (images) of section 4. Depth and conv widths are our choices (config.yaml)."""

    kind: str = "mlp"  # "mlp" or "cnn"
    width: int = 128  # MLP hidden width (section 4)
    depth: int = 2  # MLP hidden layers (paper silent)
    dropout: float = 0.3  # MLP dropout (section 4)
    conv_channels: tuple[int, ...] = (32, 64, 64)  # CNN: three 3x3 convolutions (channels: paper silent)
    fc_width: int = 256  # CNN: two fully connected layers of 256 (section 4)
    fc_depth: int = 2
    fc_dropout: float = 0.5

    def hidden_widths(self) -> list[int]:
        return [self.fc_width] * self.fc_depth if self.kind == "cnn" else [self.width] * self.depth

    def hidden_dropout(self) -> float:
        return self.fc_dropout if self.kind == "cnn" else self.dropout


@dataclass(frozen=True)
class RunSpec:
    """One run of a pack: its seed and its own hyper-parameters (defaults: Appendix B)."""

    seed: int
    lr: float = 1e-3
    lambda_kl: float = 0.068
    lambda_auto: float = 1.0
    lambda_pred: float = 1.0


@dataclass(frozen=True)
class TrainingConfig:
    """Training choices. The paper fixes Adam, weight decay and unit clipping (section 4); the rest
    (batch size, epochs, patience, schedule) are ours and documented in config.yaml."""

    batch_size: int = 256
    max_epochs: int = 150
    patience: int = 20
    weight_decay: float = 1e-4  # 1e-4 for the MLP, 1e-2 for the CNN (section 4)
    codec_weight_decay: float = 1e-4  # encoder-decoder (section 4)
    weight_decay_mode: str = "decoupled"  # "l2" (torch.optim.Adam) or "decoupled" (AdamW); paper silent
    codec_weight_decay_mode: str = "decoupled"  # the same for the encoder-decoder parameters
    grad_clip: float = 1.0
    schedule: str = "cosine"
    warmup_fraction: float = 0.05
    eval_batch_size: int = 4096
    log_every: int = 10  # epochs between progress lines
    compile: bool = False  # torch.compile the step's forward and loss (see train_pack)

    def computed(self) -> TrainingConfig:
        """These settings without the ones that only say how a pack runs (evaluation chunks, progress
        lines, compilation: the same numbers within round-off): what a checkpoint must match, so that
        a job resumed with other logging or on a compiled step continues where it stopped."""
        return replace(self, eval_batch_size=0, log_every=0, compile=False)


@dataclass(frozen=True)
class MethodSettings:
    """Method constants the paper fixes (section 4, Appendix B); per-run values live in RunSpec."""

    huber_delta: float = 1.0
    soft_binning_lambda_sigma: float = 0.5  # sigma = lambda_sigma * delta_mu in Tables 3-5
    alpha: float = 1e-6  # entropy penalty of eq. (7), Appendix B
    end_to_end_codec_init: str = "grid"  # "grid" (section 3.3 init) or "pretrained" (eq. 7 codec)
    kl_reduction: str = "mean"  # eq. (8)'s KL term: "mean" (divided by k, torch's kl_div) or "sum" over k
    grid: str = (
        "endpoints"  # m = 1 codec grid: "endpoints" c_i = i/(k-1) or "midpoints" (i+1/2)/k (codec.grid_centroids)
    )
    hard_bins: str = "half_open"  # hard binning on the grid: "half_open" bins or "nearest" centre (argmin)
    softmax_decoder_init: str = (
        "linear"  # baseline 4's initial mu: "grid", "zeros", "random" or "linear" (codec.initial_softmax_decoder)
    )


@dataclass
class RunResult:
    spec: RunSpec
    metrics: dict[str, float]
    epochs_trained: int
    best_epoch: int  # 1-based epoch of the restored weights; 0 if no epoch gave a finite val MAE
    val_mae_history: list[float] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.best_epoch == 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["diverged"] = self.diverged
        return d
