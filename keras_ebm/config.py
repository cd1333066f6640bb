"""One dataclass of defaults; ``train.py`` flags are generated from its fields."""

import argparse
import dataclasses
import json
import os
import typing

from keras_ebm.distribute import MIXED_PRECISION, STRATEGIES, check_tf_config
from keras_ebm.networks import NETWORKS
from keras_ebm.sampler import PARAMETERIZATIONS

MODELS = ("jem", "ebm", "rbm")


@dataclasses.dataclass
class Config:
    """Everything a training run needs. Field docs become ``--help`` text."""

    # Model
    model: str = "jem"  # jem (classifier + EBM), ebm (unconditional, Du & Mordatch) or rbm
    network: str = "cnn_wide"  # mlp, cnn (the book's), cnn_wide or resnet
    spectral_norm: bool = False  # wrap layers in spectral normalisation
    # Data
    dataset: str = "mnist"  # mnist (bundled), tfds:NAME or toy:NAME (keras_ebm.toy.DENSITIES)
    data_file: typing.Optional[str] = None  # an .npz to read instead of the bundled MNIST
    subset: typing.Optional[int] = None  # train on only this many images (quick runs)
    validation_size: int = 5000  # training images held out for validation
    pad: int = 0  # zero-pad images by this many pixels per side (2 gives 32x32, as in the book)
    dequantize: bool = False  # add uniform noise of one grey level to real images
    # augmentation: translate training images by up to this many pixels (default 1; 0 for toy:NAME)
    shift: typing.Optional[int] = None
    # Optimisation
    epochs: int = 18
    batch_size: int = 128
    lr: float = 1e-3  # Adam learning rate (cosine-decayed to lr * 0.01 over the run)
    beta_1: float = 0.9  # Adam beta_1 (JEM uses 0.9; the UvA EBM tutorial uses 0.0)
    ce_weight: float = 1.0  # JEM: weight of cross-entropy
    px_weight: float = 0.3  # JEM: weight of the generative terms; 0 = plain classifier
    reg_weight: float = 0.1  # L2 energy regulariser
    real_noise: float = 0.005  # Gaussian noise std added to real images
    # Langevin sampler and replay buffer
    langevin_steps: int = 20
    langevin_alpha: float = 10.0  # step size
    langevin_sigma: float = 0.005  # noise std (sgld parameterisation)
    grad_clip: float = 0.03  # per-pixel gradient clip (0 disables)
    parameterization: str = "sgld"  # sgld or langevin (noise sqrt(2 * alpha))
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    # JEM: share of negatives drawn from E(x, y) with random y, the rest from E(x) (bare flag: 1)
    conditional_sampling: float = dataclasses.field(default=0.0, metadata={"flag_alone": 1.0})
    # Restricted Boltzmann machine (--model rbm; Gibbs sampling, no network or Langevin)
    rbm_hidden: int = 500  # hidden units
    cd_steps: int = 1  # Gibbs steps per training step (CD-k / PCD-k)
    persistent: bool = False  # PCD: --batch_size persistent chains instead of CD from the data
    ais_runs: int = 100  # AIS runs for the test log-likelihood at the end (with --evaluate)
    ais_betas: int = 14500  # AIS inverse temperatures (Salakhutdinov & Murray 2008)
    # Outputs
    out: typing.Optional[str] = None  # run directory (default runs/<model>-<time>)
    log_file: typing.Optional[str] = None  # log path (default <run dir>/train.log)
    sample_every: int = 1  # write sample grids every N epochs (0 = only at the end)
    sample_steps: int = 200  # Langevin steps from noise for sample grids
    final_sample_steps: int = 500  # Langevin steps from noise for the final grids
    max_abs_energy: float = 1e4  # divergence: |loss| or |mean energy| above this
    max_energy_gap: float = 100.0  # divergence: |mean E(real) - mean E(sample)| above this
    max_recoveries: int = 2  # rollbacks to the last good state after a divergence, then stop
    recovery_lr_factor: float = 0.5  # multiply the learning rate by this at each rollback
    resume: bool = False  # continue the unfinished run in --out from its last backup
    backup_every: int = 100  # back up the training state every N batches too (0: epoch ends only)
    deterministic: bool = False  # op determinism + fixed seeds: identical reruns (slower)
    tensorboard: bool = False  # also write TensorBoard logs to <run dir>/tensorboard
    export: bool = False  # also export a SavedModel with named endpoints to <run dir>/export
    evaluate: bool = True  # run keras_ebm.evaluate at the end (<run dir>/evaluation)
    eval_samples: int = 500  # unconditional samples per seed for the evaluation
    eval_steps: int = 500  # Langevin steps from noise for the evaluation
    eval_num_test: int = 10000  # test images used by the evaluation
    eval_warm_start: float = 0.8  # also score conditional chains that run this share on E(x) first
    verbose: int = 1  # Keras progress: 0 silent, 1 progress bar, 2 one line per epoch
    seed: int = 0
    # Devices (README: Multiple devices and machines)
    strategy: str = "auto"  # auto (mirrored with 2+ GPUs), default, mirrored or multiworker
    mixed_precision: str = "none"  # bfloat16 or float16 compute; weights, energies in float32

    def __post_init__(self):
        if self.shift is None:
            self.shift = 0 if self.dataset.startswith("toy:") else 1

    def validate(self):
        """Raise ``ValueError`` naming the bad field and the fix."""
        errors = []
        if self.model not in MODELS:
            errors.append(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.network not in NETWORKS:
            errors.append(f"--network must be one of {', '.join(NETWORKS)}, got {self.network!r}")
        if self.parameterization not in PARAMETERIZATIONS:
            errors.append(
                f"--parameterization must be one of {', '.join(PARAMETERIZATIONS)}, "
                f"got {self.parameterization!r}"
            )
        positive = ("epochs", "batch_size", "lr", "langevin_alpha", "buffer_size",
                    "sample_steps", "final_sample_steps", "max_abs_energy", "eval_samples",
                    "eval_steps", "eval_num_test", "rbm_hidden", "cd_steps", "ais_runs")
        for name in positive:
            if not getattr(self, name) > 0:
                errors.append(f"--{name} must be > 0, got {getattr(self, name)}")
        non_negative = ("langevin_steps", "langevin_sigma", "grad_clip", "pad", "reg_weight",
                        "real_noise", "ce_weight", "px_weight", "sample_every", "validation_size",
                        "shift")
        for name in non_negative:
            if getattr(self, name) < 0:
                errors.append(f"--{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.conditional_sampling <= 1:
            errors.append(f"--conditional_sampling must be a share in [0, 1], "
                          f"got {self.conditional_sampling}")
        if not 0 <= self.eval_warm_start <= 1:
            errors.append(f"--eval_warm_start must be a share in [0, 1], got {self.eval_warm_start}")
        if not 0 <= self.reinit_prob <= 1:
            errors.append(f"--reinit_prob must be in [0, 1], got {self.reinit_prob}")
        if not 0 <= self.beta_1 < 1:
            errors.append(f"--beta_1 must be in [0, 1), got {self.beta_1}")
        if self.max_recoveries < 0 or self.backup_every < 0:
            errors.append(f"--max_recoveries and --backup_every must be >= 0, got "
                          f"{self.max_recoveries} and {self.backup_every}")
        if not 0 < self.recovery_lr_factor <= 1:
            errors.append(f"--recovery_lr_factor must be in (0, 1], got {self.recovery_lr_factor}")
        if not self.max_energy_gap > 0:
            errors.append(f"--max_energy_gap must be > 0, got {self.max_energy_gap}")
        if self.resume and not self.out:
            errors.append("--resume needs --out DIR, the run directory to continue")
        if self.subset is not None and self.subset <= 0:
            errors.append(f"--subset must be > 0, got {self.subset}")
        if self.strategy not in STRATEGIES:
            errors.append(f"--strategy must be one of {', '.join(STRATEGIES)}, "
                          f"got {self.strategy!r}")
        elif self.strategy == "multiworker":
            try:
                check_tf_config(os.environ.get("TF_CONFIG"))
            except ValueError as err:
                errors.append(str(err))
        if self.mixed_precision not in MIXED_PRECISION:
            errors.append(f"--mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                          f"got {self.mixed_precision!r}")
        if self.model != "jem" and self.conditional_sampling:
            errors.append(f"--conditional_sampling needs --model jem "
                          f"(the {self.model.upper()} has no classes)")
        if self.ais_betas < 3:
            errors.append(f"--ais_betas must be >= 3, got {self.ais_betas}")
        if self.model == "rbm" and self.export:
            errors.append("--export supports --model jem and ebm; drop it for the RBM")
        if self.dataset.startswith("toy:"):
            if self.model != "ebm" or self.network != "mlp":
                errors.append("--dataset toy:NAME holds points, not images: "
                              "use --model ebm --network mlp")
            image_only = [f"--{n}" for n in ("pad", "shift", "dequantize", "export")
                          if getattr(self, n)]
            if image_only:
                errors.append(f"{', '.join(image_only)} apply to images; drop them for toy:NAME")
        if errors:
            raise ValueError("Invalid configuration:\n  " + "\n  ".join(errors))
        return self

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def _field_help(field):
    return f"(default: {field.default})"


def _parse_bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser(parser=None):
    """An ``argparse`` parser with one ``--flag`` per :class:`Config` field."""
    parser = parser or argparse.ArgumentParser(
        description="Train an energy-based model (JEM or EBM) with keras_ebm.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        kind = hints[field.name]
        if typing.get_origin(kind) is typing.Union:  # Optional[X]
            kind = typing.get_args(kind)[0]
        if kind is bool:
            parser.add_argument(f"--{field.name}", type=_parse_bool, nargs="?", const=True,
                                default=field.default, metavar="BOOL")
        elif "flag_alone" in field.metadata:  # "--flag" alone means this value
            parser.add_argument(f"--{field.name}", type=kind, nargs="?",
                                const=field.metadata["flag_alone"], default=field.default)
        else:
            parser.add_argument(f"--{field.name}", type=kind, default=field.default)
    return parser


def from_args(argv=None):
    """Parse command-line flags into a validated :class:`Config`."""
    args = build_parser().parse_args(argv)
    return Config(**vars(args)).validate()
