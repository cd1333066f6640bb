"""Plain PyTorch versions of keras_ebm's CNNs, Langevin sampler and JEM step, for benchmarks only.

Written the way PyTorch EBM code usually is (the UvA tutorial, JEM's
``train_wrn_ebm.py``): a ``requires_grad`` input, ``autograd.grad`` of the
summed energy, in-place clamps and noise, a replay buffer in one tensor.
The networks have the same layers, channels, strides, output shapes and
parameter counts as ``keras_ebm.models.networks.cnn`` / ``cnn_wide`` (channels-first,
symmetric padding; weights are not shared). Needs ``torch`` (see
``benchmarks/requirements.txt``).
"""

import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class CNN(nn.Sequential):
    """``keras_ebm.models.networks.cnn``: strided swish convolutions (5x5 then 3x3), a swish dense layer."""

    def __init__(self, input_shape=(28, 28, 1), num_outputs=10, filters=(16, 32, 64, 64),
                 dense_units=64):
        height, width, channels = input_shape
        layers = []
        for i, f in enumerate(filters):
            kernel = 5 if i == 0 else 3
            layers += [nn.Conv2d(channels, f, kernel, stride=2, padding=kernel // 2), nn.SiLU()]
            channels = f
            height, width = (height + 1) // 2, (width + 1) // 2  # "same" padding, stride 2
        layers += [nn.Flatten(), nn.Linear(channels * height * width, dense_units), nn.SiLU(),
                   nn.Linear(dense_units, num_outputs)]
        super().__init__(*layers)


def get_network(name, input_shape=(28, 28, 1), num_outputs=10):
    if name == "cnn":
        return CNN(input_shape, num_outputs)
    if name == "cnn_wide":
        return CNN(input_shape, num_outputs, filters=(32, 64, 64, 64), dense_units=128)
    raise ValueError(f"No PyTorch version of network {name!r}; choose cnn or cnn_wide.")


def num_params(network):
    return sum(p.numel() for p in network.parameters())


def marginal_energy(scores):
    return -torch.logsumexp(scores, dim=-1)


def langevin(network, x, steps, step_size=10.0, noise_scale=0.005, grad_clip=0.03,
             value_range=(-1.0, 1.0)):
    """keras_ebm's "sgld" update: x <- clamp(x - step_size * clip(grad E) + noise_scale * N(0, I))."""
    was_training = network.training
    network.eval()
    for p in network.parameters():  # only the input gradient is needed
        p.requires_grad_(False)
    x = x.detach().clone().requires_grad_(True)
    noise = torch.empty_like(x)
    for _ in range(steps):
        energy = marginal_energy(network(x)).sum()
        grad = torch.autograd.grad(energy, x)[0]
        grad.clamp_(-grad_clip, grad_clip)
        noise.normal_(0.0, noise_scale)
        x.data.add_(grad, alpha=-step_size).add_(noise).clamp_(*value_range)
    for p in network.parameters():
        p.requires_grad_(True)
    network.train(was_training)
    return x.detach()


class JEM:
    """JEM training step as in keras_ebm.JEM (defaults of ``train.py``): replay buffer with 5%
    restarts, Langevin negatives, one forward pass over real and negative images, loss
    ``CE + px_weight * (cdiv + reg_weight * reg)``, Adam."""

    def __init__(self, network, sample_shape=(28, 28, 1), buffer_size=10000, steps=20,
                 px_weight=0.3, reg_weight=0.1, reinit_prob=0.05, real_noise=0.005, lr=1e-3,
                 memory_format=torch.contiguous_format, device="cpu"):
        self.network = network
        self.memory_format = memory_format
        self.device = device
        self.sample_shape = (sample_shape[2], sample_shape[0], sample_shape[1])
        self.buffer = torch.rand((buffer_size,) + self.sample_shape, device=device) * 2 - 1
        self.steps, self.px_weight, self.reg_weight = steps, px_weight, reg_weight
        self.reinit_prob, self.real_noise = reinit_prob, real_noise
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr, betas=(0.9, 0.999))

    def sample_negatives(self, batch_size):
        slots = torch.randint(0, len(self.buffer), (batch_size,), device=self.device)
        starts = self.buffer[slots]
        restart = torch.rand(batch_size, device=self.device) < self.reinit_prob
        starts[restart] = torch.rand((int(restart.sum()),) + self.sample_shape,
                                     device=self.device) * 2 - 1
        samples = langevin(self.network, starts.contiguous(memory_format=self.memory_format),
                           self.steps)
        self.buffer[slots] = samples
        return samples

    def train_step(self, x, y):
        negatives = self.sample_negatives(len(x))
        x = (x + self.real_noise * torch.randn_like(x)).clamp_(-1.0, 1.0)
        scores = self.network(torch.cat([x, negatives]))
        scores_real, scores_sample = scores[: len(x)], scores[len(x):]
        energy_real, energy_sample = marginal_energy(scores_real), marginal_energy(scores_sample)
        cdiv = energy_real.mean() - energy_sample.mean()
        reg = (energy_real**2).mean() + (energy_sample**2).mean()
        loss = F.cross_entropy(scores_real, y) + self.px_weight * (cdiv + self.reg_weight * reg)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def serve(threads):
    """Answer timing requests (one JSON object a line on stdin) with seconds on stdout.

    Requests: ``{"task": "params", "network", "input_shape", "num_outputs"}`` answers the
    parameter count; ``{"task": "sample", "network", "input_shape", "num_outputs", "batch_size",
    "steps", "channels_last", "compiled"}`` times one Langevin chain; an optional ``"device"``
    (e.g. ``"cuda"``) places network and data there, and timings then wait for the device; ``{"task": "train",
    "network", "batch_size", "langevin_steps", "iterations", "channels_last", "compiled"}``
    times JEM iterations on random MNIST-shaped batches (``compiled``: the network wrapped in
    ``torch.compile``, PyTorch 2's graph compiler, forward and backward). Networks and inputs are built on first use (answer -1).
    Run in its own process so that its OpenMP threads never compete with TensorFlow's.
    """
    torch.set_num_threads(threads)
    print(json.dumps({"threads": torch.get_num_threads(), "version": torch.__version__}), flush=True)
    cache = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["task"] == "params":
            network = get_network(request["network"], request["input_shape"], request["num_outputs"])
            print(json.dumps({"params": num_params(network)}), flush=True)
            continue
        key = json.dumps(request, sort_keys=True)
        fresh = key not in cache
        if fresh:
            cache[key] = _build(request)
        seconds = _timed(cache[key], request.get("device", "cpu"))
        print(json.dumps({"seconds": -1 if fresh else seconds}), flush=True)


def _timed(function, device):
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _build(request):
    torch.manual_seed(0)
    device = request.get("device", "cpu")
    memory_format = torch.channels_last if request["channels_last"] else torch.contiguous_format
    shape = request.get("input_shape", (28, 28, 1))
    network = get_network(request["network"], shape, request.get("num_outputs", 10))
    network = network.to(device=device, memory_format=memory_format)
    if request.get("compiled"):
        network = torch.compile(network)
    batch = (request["batch_size"], shape[2], shape[0], shape[1])
    if request["task"] == "sample":
        x = (torch.rand(batch, device=device) * 2 - 1).contiguous(memory_format=memory_format)
        return lambda: langevin(network, x, request["steps"])
    jem = JEM(network, shape, steps=request["langevin_steps"], memory_format=memory_format,
              device=device)
    images = (torch.rand((1000,) + batch[1:], device=device) * 2 - 1).contiguous(
        memory_format=memory_format)
    labels = torch.randint(0, 10, (1000,), device=device)

    def train():
        for _ in range(request["iterations"]):
            index = torch.randint(0, len(images), (request["batch_size"],), device=device)
            jem.train_step(images[index], labels[index])
    return train


def cuda_table(repeats=3, steps=60, langevin_steps=10, iterations=20):
    """Prints image-steps/s of the Langevin chain (``cnn``, ``cnn_wide``; batch 128, 512) and
    the default JEM's iterations/s (``cnn_wide``, batch 128) on the GPU, for every variant
    (eager/compiled, channels-first/last), median of ``repeats`` after one warm-up.

        python benchmarks/torch_reference.py --cuda_table
    """
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}", flush=True)
    variants = {"eager, channels-first": (False, False), "eager, channels-last": (True, False),
                "compiled, channels-first": (False, True), "compiled, channels-last": (True, True)}
    print("| task | network | batch | variant | rate |\n|---|---|---|---|---|")
    cells = [("sample", network, batch_size) for network in ("cnn", "cnn_wide")
             for batch_size in (128, 512)] + [("train", "cnn_wide", 128)]
    for task, network, batch_size in cells:
        for variant, (channels_last, compiled) in variants.items():
            request = dict(task=task, network=network, batch_size=batch_size, steps=steps,
                           langevin_steps=langevin_steps, iterations=iterations,
                           channels_last=channels_last, compiled=compiled, device="cuda")
            function = _build(request)
            _timed(function, "cuda")
            seconds = sorted(_timed(function, "cuda") for _ in range(repeats))[repeats // 2]
            rate = (f"{batch_size * steps / seconds:,.0f} image-steps/s" if task == "sample"
                    else f"{iterations / seconds:,.1f} iterations/s")
            print(f"| {task} | {network} | {batch_size} | {variant} | {rate} |", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--cuda_table"]:
        cuda_table()
    else:
        serve(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
