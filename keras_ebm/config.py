"""One dataclass of defaults; ``train.py`` flags, their help and choices come from its fields."""

import argparse
import dataclasses
import json
import math
import os
import re
import typing

# The names each library module accepts (tests check they match); no TensorFlow import here,
# so that ``--help`` answers at once.
MODELS = ("jem", "ebm", "rbm", "dsm", "ssm")
NETWORKS = ("mlp", "cnn", "cnn_wide", "resnet")
PARAMETERIZATIONS = ("sgld", "langevin")
CHAIN_STARTS = ("uniform", "class_gaussian")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
MIXED_PRECISION = ("none", "bfloat16", "float16")
MAX_SAMPLES_PER_CALL = 65536  # generate runs its chains side by side; more would exhaust memory
DIVERGENCE_LIMITS = ("max_abs_energy", "max_energy_gap")  # may be inf: no limit
BUDGETED_EPOCHS = 1000  # --epochs under --budget_minutes when not given: the budget decides


SECTIONS = ("data", "model", "sampler", "training", "output", "reliability", "evaluation",
            "distribution")


def annealed_step_size(noise_levels):
    """The annealed Langevin step at the smallest noise level: NCSN's 0.1 * sigma_min^2."""
    return 0.1 * min(noise_levels) ** 2


def option(default, help, section, choices=None, flag_alone=None):
    """A :class:`Config` field with its ``--help`` text, section and allowed values."""
    metadata = {"help": help, "section": section}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if flag_alone is not None:
        metadata["flag_alone"] = flag_alone
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class Config:
    """Everything a training run needs; each field's metadata is its ``--help`` text."""

    # Data
    dataset: str = option("mnist", "mnist (bundled), tfds:NAME (tensorflow-datasets) or toy:NAME "
                          "(a 2-D/1-D toy density, keras_ebm.data.toy.DENSITIES)", "data")
    data_file: typing.Optional[str] = option(None, "an .npz (x_train, y_train, x_test, y_test) to "
                                             "read instead of the bundled MNIST", "data")
    subset: typing.Optional[int] = option(None, "train on only this many images (quick runs)",
                                          "data")
    validation_size: int = option(5000, "training images held out for validation", "data")
    pad: int = option(0, "zero-pad images by this many pixels per side (2 gives 32x32, as in "
                      "the book)", "data")
    dequantize: bool = option(False, "add uniform noise of one grey level to real images", "data")
    shift: typing.Optional[int] = option(None, "translate training images by up to this many "
                                         "pixels (default: 1 for images, 0 for toy:NAME)", "data")
    # Model
    model: str = option("jem", "jem (classifier + EBM), ebm (unconditional, Du & Mordatch), rbm "
                        "(restricted Boltzmann machine), dsm or ssm (an energy trained by "
                        "denoising or sliced score matching, no MCMC in training; sample it with "
                        "--parameterization langevin and a small --langevin_alpha)", "model",
                        MODELS)
    network: str = option("cnn_wide", "energy network: mlp, cnn (the book's), cnn_wide or "
                          "resnet", "model", NETWORKS)
    spectral_norm: bool = option(False, "wrap the network's layers in spectral normalisation",
                                 "model")
    ce_weight: float = option(1.0, "JEM: weight of the cross-entropy term", "model")
    px_weight: float = option(0.3, "JEM: weight of the generative terms (0: plain classifier)",
                              "model")
    calibrate: bool = option(True, "JEM: after training, fit a temperature for p(y|x) on the "
                             "validation split (temperature scaling; predicted classes and "
                             "energies unchanged)", "model")
    reg_weight: float = option(0.1, "weight of the L2 energy regulariser", "model")
    noise_levels: str = option("0.05,0.1,0.2", "dsm: comma-separated noise stds, one drawn per "
                               "example (the default suits toy data; for images in [-1, 1] "
                               "with --annealed, e.g. a ladder from 2 down to 0.02)", "model")
    noise_weight_power: float = option(
        2.0, "dsm: noise level sigma weighs sigma^POWER in the loss (2: every level alike, Song "
        "& Ermon; lower: the small levels set the density near the data and the large ones "
        "still train it far away)", "model")
    annealed: bool = option(False, "dsm: the energy at noise level sigma is E(x) / sigma (Song "
                            "& Ermon 2020), sampled by annealed Langevin from the largest level "
                            "to the smallest and a final denoising step; --langevin_alpha is "
                            "then the step at the smallest level, and --grad_clip, "
                            "--langevin_sigma and --parameterization do not apply", "model")
    noise_conditional: bool = option(
        False, "dsm: the network is told the noise level (a log-sigma input channel), so each "
        "level fits its own energy E(x, sigma), sampled by annealed Langevin as with --annealed "
        "(the two exclude each other); on toy points the density is the probability-flow "
        "ODE's at the smallest level", "model")
    continuous_noise: bool = option(
        False, "dsm --noise_conditional: draw each example's sigma log-uniformly between the "
        "smallest and largest --noise_levels instead of from the list, so the energy is fitted "
        "at every level (the list then sets the annealed chain's levels)", "model")
    rbm_hidden: int = option(500, "RBM: hidden units", "model")
    cd_steps: int = option(1, "RBM: Gibbs steps per training step (CD-k / PCD-k)", "model")
    persistent: bool = option(False, "RBM: persistent chains (PCD) instead of CD from the data",
                              "model")
    rbm_temperatures: int = option(1, "RBM with --persistent: replicas of the chains in a "
                                   "parallel-tempering ladder (1: plain PCD)", "model")
    rbm_min_beta: float = option(0.5, "RBM: inverse temperature of the hottest replica, in (0, 1)",
                                 "model")
    # Langevin sampler and replay buffer
    langevin_steps: typing.Optional[int] = option(
        None, "Langevin steps per training iteration (default: 10 with class_gaussian starts, "
        "else 20)", "sampler")
    langevin_alpha: typing.Optional[float] = option(
        None, "Langevin step size (default: 0.1 * sigma_min^2 with --annealed or "
        "--noise_conditional, 5 with "
        "class_gaussian starts, else 10)",
        "sampler")
    langevin_sigma: float = option(0.005, "Langevin noise std (sgld parameterisation)",
                                   "sampler")
    grad_clip: float = option(0.03, "per-pixel clip of the energy gradient (0 disables)",
                              "sampler")
    parameterization: str = option("sgld", "sgld (independent noise, as in JEM and the book) or "
                                   "langevin (noise sqrt(2 * step size))", "sampler",
                                   PARAMETERIZATIONS)
    buffer_size: int = option(10000, "replay-buffer size", "sampler")
    reinit_prob: float = option(0.05, "per chain and training iteration, the chance that a "
                                "buffer chain restarts from --chain_start", "sampler")
    chain_start: typing.Optional[str] = option(
        None, "where new chains start (buffer restarts and generated samples): uniform noise, or "
        "class_gaussian, one Gaussian per class fitted to the training images (default: "
        "class_gaussian for an image JEM, else uniform)", "sampler", CHAIN_STARTS)
    refine_steps: typing.Optional[int] = option(
        None, "noise-free Langevin steps that end every generated chain (default: 50 with "
        "class_gaussian starts, else 0)", "sampler")
    refine_step_size: float = option(1.0, "step size of the noise-free steps", "sampler")
    conditional_sampling: float = option(0.0, "JEM: share of negatives drawn from E(x, y) with "
                                         "random y, the rest from E(x) (the flag alone: 1)",
                                         "sampler", flag_alone=1.0)
    # Optimisation
    epochs: typing.Optional[int] = option(
        None, "passes over the training images (default: 15; with --budget_minutes, as many as "
        "the budget buys)", "training")
    budget_minutes: typing.Optional[float] = option(
        None, "stop after this much compute (process CPU minutes / usable cores); the learning "
        "rate then decays over the budget, or over --epochs if they end first", "training")
    batch_size: int = option(128, "images per training batch (global, over all replicas)",
                             "training")
    lr: float = option(1e-3, "Adam learning rate, cosine-decayed to lr * 0.01 over the run",
                       "training")
    beta_1: float = option(0.9, "Adam beta_1 (JEM uses 0.9; the UvA EBM tutorial 0.0)",
                           "training")
    weight_decay: float = option(0.0, "decoupled weight decay of the weights (AdamW; biases "
                                 "excluded; the RBM literature's weight cost)", "training")
    ema: float = option(0.0, "momentum of a moving average of the weights that replaces them "
                        "after training (e.g. 0.995; 0: off)", "training")
    real_noise: float = option(0.005, "std of Gaussian noise added to real images", "training")
    seed: int = option(0, "seed of the data split, initialisation, sampler and buffer",
                       "training")
    deterministic: bool = option(False, "op determinism and fixed seeds: identical reruns "
                                 "(slower)", "training")
    # Outputs
    out: typing.Optional[str] = option(None, "run directory (default: runs/<model>-<time>)",
                                       "output")
    log_file: typing.Optional[str] = option(None, "log path (default: <run dir>/train.log)",
                                            "output")
    sample_every: int = option(1, "write sample grids every N epochs (0: only at the end)",
                               "output")
    sample_steps: typing.Optional[int] = option(
        None, "Langevin steps of the sample grids' chains (default: 35 with class_gaussian "
        "starts, else 200)", "output")
    final_sample_steps: typing.Optional[int] = option(
        None, "Langevin steps of the final grids' chains (default: 35 with class_gaussian "
        "starts, else 500)", "output")
    tensorboard: bool = option(False, "also write TensorBoard logs to <run dir>/tensorboard",
                               "output")
    export: bool = option(False, "also export a SavedModel with named endpoints to "
                          "<run dir>/export", "output")
    verbose: int = option(1, "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch",
                          "output", (0, 1, 2))
    # Reliability
    max_abs_energy: float = option(1e4, "divergence: |loss| or |mean energy| above this "
                                   "(inf: never)", "reliability")
    max_energy_gap: float = option(100.0, "divergence: |mean E(real) - mean E(sample)| above "
                                   "this (inf: never)", "reliability")
    max_recoveries: int = option(2, "rollbacks to the last good state after a divergence, then "
                                 "stop", "reliability")
    recovery_lr_factor: float = option(0.5, "multiply the learning rate by this at each rollback",
                                       "reliability")
    resume: bool = option(False, "continue the unfinished run in --out from its last backup",
                          "reliability")
    backup_every: int = option(100, "also back up the training state every N batches (0: at "
                               "epoch ends only)", "reliability")
    # Evaluation
    evaluate: bool = option(True, "evaluate at the end (<run dir>/evaluation)", "evaluation")
    eval_samples: int = option(500, "unconditional samples per seed for the evaluation",
                               "evaluation")
    eval_steps: typing.Optional[int] = option(
        None, "Langevin steps of the evaluation's sample chains (default: 35 with "
        "class_gaussian starts, else 500; chosen on validation FID)", "evaluation")
    eval_num_test: int = option(10000, "test images used by the evaluation", "evaluation")
    eval_warm_start: float = option(0.8, "also score conditional chains that run this share of "
                                    "their steps on E(x) first", "evaluation")
    ais_runs: int = option(100, "RBM: AIS runs for the test log-likelihood", "evaluation")
    ais_betas: int = option(14500, "RBM: AIS inverse temperatures (Salakhutdinov & Murray 2008)",
                            "evaluation")
    ais_reverse_images: int = option(
        200, "RBM: test images also scored by reverse annealing (RAISE, a conservative estimate "
        "that with AIS brackets their log-likelihood; 0: off)", "evaluation")
    # Devices (README: Multiple devices and machines)
    strategy: str = option("auto", "auto (mirrored with 2+ GPUs), default, mirrored or "
                           "multiworker (TF_CONFIG)", "distribution", STRATEGIES)
    mixed_precision: str = option("none", "bfloat16 or float16 compute for the network; "
                                  "weights and energies stay float32", "distribution",
                                  MIXED_PRECISION)
    jit_compile: bool = option(False, "JEM/EBM on one device: compile the training step with "
                               "XLA (slower on CPUs; may pay on a GPU)", "distribution")

    def __post_init__(self):
        for name in ("out", "data_file", "log_file"):  # "runs/x/" and "runs/x" are one place
            if getattr(self, name):
                setattr(self, name, os.path.normpath(getattr(self, name)))
        toy = self.dataset.startswith("toy:")
        if self.shift is None:
            self.shift = 0 if toy else 1
        if self.epochs is None:
            self.epochs = 15 if self.budget_minutes is None else BUDGETED_EPOCHS
        if self.chain_start is None:
            self.chain_start = "class_gaussian" if self.model == "jem" and not toy else "uniform"
        if self.langevin_alpha is None:
            self.langevin_alpha = 5.0 if self.chain_start == "class_gaussian" else 10.0
            if self.annealed_chain:
                try:
                    self.langevin_alpha = annealed_step_size(self.noise_level_values)
                except ValueError:
                    pass  # validate() names the bad --noise_levels
        informative = self.chain_start == "class_gaussian"
        for name, with_start, without in (("langevin_steps", 10, 20), ("refine_steps", 50, 0),
                                          ("sample_steps", 35, 200),
                                          ("final_sample_steps", 35, 500),
                                          ("eval_steps", 35, 500)):
            if getattr(self, name) is None:
                setattr(self, name, with_start if informative else without)

    @property
    def annealed_chain(self):
        """Whether samples come from an annealed chain through the noise levels."""
        return self.model == "dsm" and (self.annealed or self.noise_conditional)

    @property
    def noise_level_values(self):
        """``--noise_levels`` as floats (``ValueError`` if one does not parse)."""
        return [float(v) for v in self.noise_levels.split(",")]

    def validate(self):
        """Raise ``ValueError`` naming the bad field and the fix."""
        errors = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in DIVERGENCE_LIMITS and value == float("inf"):
                continue  # the limit is off
            if isinstance(value, float) and not math.isfinite(value):
                errors.append(f"--{field.name} must be a finite number, got {value}")
        if errors:  # the range checks below would repeat these
            raise ValueError("Invalid configuration:\n  " + "\n  ".join(errors))
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
                    "eval_steps", "eval_num_test", "rbm_hidden", "cd_steps", "ais_runs",
                    "refine_step_size", "rbm_temperatures")
        for name in positive:
            if not getattr(self, name) > 0:
                errors.append(f"--{name} must be > 0, got {getattr(self, name)}")
        non_negative = ("ais_reverse_images", "weight_decay", "langevin_steps", "langevin_sigma",
                        "grad_clip", "pad", "reg_weight",
                        "real_noise", "ce_weight", "px_weight", "sample_every", "validation_size",
                        "shift", "refine_steps")
        for name in non_negative:
            if getattr(self, name) < 0:
                errors.append(f"--{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.rbm_min_beta < 1:
            errors.append(f"--rbm_min_beta must be in (0, 1), got {self.rbm_min_beta}")
        if self.rbm_temperatures > 1 and not self.persistent:
            errors.append("--rbm_temperatures > 1 tempers persistent chains; add --persistent true")
        if self.chain_start not in CHAIN_STARTS:
            errors.append(f"--chain_start must be one of {', '.join(CHAIN_STARTS)}, "
                          f"got {self.chain_start!r}")
        if self.chain_start != "uniform" and (self.model not in ("jem", "ebm")
                                              or self.dataset.startswith("toy:")):
            errors.append(f"--chain_start {self.chain_start} is for image JEMs and EBMs; "
                          "leave it at uniform for this model or dataset")
        if self.eval_samples > MAX_SAMPLES_PER_CALL:
            errors.append(f"--eval_samples must be at most {MAX_SAMPLES_PER_CALL} (the chains run "
                          f"side by side), got {self.eval_samples}")
        if self.data_file and not self.dataset == "mnist":
            errors.append(f"--data_file replaces the bundled MNIST; --dataset {self.dataset} "
                          "loads its own data: drop one of them")
        if not 0 <= self.conditional_sampling <= 1:
            errors.append(f"--conditional_sampling must be a share in [0, 1], "
                          f"got {self.conditional_sampling}")
        if not 0 <= self.eval_warm_start <= 1:
            errors.append(f"--eval_warm_start must be a share in [0, 1], got {self.eval_warm_start}")
        if not 0 <= self.reinit_prob <= 1:
            errors.append(f"--reinit_prob must be in [0, 1], got {self.reinit_prob}")
        if self.budget_minutes is not None and not 0 < self.budget_minutes < float("inf"):
            errors.append(f"--budget_minutes must be a positive number, got {self.budget_minutes}")
        if not 0 <= self.ema < 1:
            errors.append(f"--ema must be in [0, 1), got {self.ema}")
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
        try:
            levels = self.noise_level_values
            if not levels or min(levels) <= 0 or not all(map(math.isfinite, levels)):
                raise ValueError
        except ValueError:
            errors.append(f"--noise_levels must be comma-separated positive numbers, got "
                          f"{self.noise_levels!r}")
        if self.jit_compile and self.deterministic:
            errors.append("--jit_compile and --deterministic exclude each other (Keras turns XLA "
                          "off under op determinism): drop one")
        if self.jit_compile and self.model not in ("jem", "ebm"):
            errors.append(f"--jit_compile compiles the JEM and EBM training steps; --model "
                          f"{self.model} trains without it: drop --jit_compile")
        if self.model != "jem" and self.conditional_sampling:
            errors.append(f"--conditional_sampling needs --model jem "
                          f"(the {self.model.upper()} has no classes)")
        if self.annealed and self.model != "dsm":
            errors.append(f"--annealed samples a denoising score-matching energy; use --model dsm "
                          f"or drop --annealed (got --model {self.model})")
        if self.noise_conditional and self.model != "dsm":
            errors.append(f"--noise_conditional tells a denoising score-matching energy its noise "
                          f"level; use --model dsm or drop it (got --model {self.model})")
        if self.noise_conditional and self.annealed:
            errors.append("--annealed (E(x) / sigma) and --noise_conditional (E(x, sigma)) are two "
                          "ways to give each noise level its energy: drop one")
        if self.continuous_noise and not self.noise_conditional:
            errors.append("--continuous_noise draws the noise level a noise-conditional energy is "
                          "told; add --noise_conditional (with --model dsm) or drop it")
        elif self.continuous_noise and not any("--noise_levels" in error for error in errors) \
                and len(set(self.noise_level_values)) < 2:
            errors.append("--continuous_noise draws sigma between the smallest and largest "
                          "--noise_levels; give at least two different levels")
        if self.noise_weight_power != 2.0 and self.model != "dsm":
            errors.append(f"--noise_weight_power weighs the noise levels of --model dsm; drop it "
                          f"for --model {self.model}")
        if self.annealed_chain and not any("--noise_levels" in error for error in errors):
            count = len(self.noise_level_values)
            short = [f"--{name} {getattr(self, name)}" for name in
                     ("langevin_steps", "sample_steps", "final_sample_steps", "eval_steps")
                     if getattr(self, name) < count]
            if short:
                errors.append(f"an annealed chain needs at least one step per noise level "
                              f"({count}): raise {', '.join(short)} to {count} or more")
        if self.ais_betas < 4:
            errors.append(f"--ais_betas must be >= 4, got {self.ais_betas}")
        if self.model in ("rbm", "dsm", "ssm") and self.export:
            errors.append(f"--export supports --model jem and ebm; drop it for --model {self.model}")
        if self.dataset.startswith("toy:"):
            if self.model not in ("ebm", "dsm", "ssm") or self.network != "mlp":
                errors.append("--dataset toy:NAME holds points, not images: "
                              "use --model ebm (or dsm, ssm) --network mlp")
            image_only = [f"--{n}" for n in ("pad", "shift", "dequantize", "export")
                          if getattr(self, n)]
            if image_only:
                errors.append(f"{', '.join(image_only)} apply to images; drop them for toy:NAME")
        if errors:
            raise ValueError("Invalid configuration:\n  " + "\n  ".join(errors))
        return self

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def _parse_bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _help(field):
    default = field.default if field.default is not None else "none"
    choices = field.metadata.get("choices")
    text = field.metadata["help"]
    if choices and not all(str(c) in text for c in choices):
        text += f"; one of {', '.join(map(str, choices))}"
    if "(default: " not in text:  # a default that depends on other flags says so itself
        text = f"{text} (default: {default})"
    return text.replace("%", "%%")


def build_parser(parser=None):
    """An ``argparse`` parser with one ``--flag`` per :class:`Config` field, grouped by section."""
    parser = parser or argparse.ArgumentParser(
        description="Train an energy-based model (JEM, EBM, RBM or score matching) with "
                    "keras_ebm; every output goes into one run directory.",
    )
    groups = {name: parser.add_argument_group(name) for name in SECTIONS}
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        group = groups[field.metadata["section"]]
        kind = hints[field.name]
        if typing.get_origin(kind) is typing.Union:  # Optional[X]
            kind = typing.get_args(kind)[0]
        common = dict(default=field.default, help=_help(field))
        if kind is bool:
            group.add_argument(f"--{field.name}", type=_parse_bool, nargs="?", const=True,
                               metavar="BOOL", **common)
        elif "flag_alone" in field.metadata:  # "--flag" alone means this value
            group.add_argument(f"--{field.name}", type=kind, nargs="?",
                               const=field.metadata["flag_alone"], **common)
        else:
            group.add_argument(f"--{field.name}", type=kind,
                               choices=field.metadata.get("choices"), **common)
    return parser


def from_args(argv=None):
    """Parse command-line flags into a validated :class:`Config`."""
    args = build_parser().parse_args(argv)
    return Config(**vars(args)).validate()


def check_tf_config(text):
    """Raise ``ValueError`` unless ``text`` is a usable ``TF_CONFIG`` for multi-worker training."""
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise ValueError(
            "--strategy multiworker needs the TF_CONFIG environment variable on every worker, "
            f"e.g. {example} (index 1 on the second machine)."
        )
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        members = cluster.get(task["type"], [])
        index = int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"TF_CONFIG is not valid ({type(err).__name__}: {err}); expected e.g. {example}."
        ) from None
    if not 0 <= index < len(members):
        raise ValueError(
            f"TF_CONFIG task {task} is not in its cluster {cluster}; expected e.g. {example}."
        )


def in_flag_terms(message):
    """A library message in the command line's terms: ``name=value`` of a ``Config`` field
    becomes ``--name value``."""
    fields = {field.name for field in dataclasses.fields(Config)}
    return re.sub(r"\b([a-z_0-9]+)=",
                  lambda m: f"--{m.group(1)} " if m.group(1) in fields else m.group(0), message)
