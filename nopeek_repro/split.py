"""The split-learning protocol: two parties, and the only tensors that cross between them.

One training step::

    z  = client.forward(x)        # client -> server: cut-layer activations (a plain tensor)
    dz = server.train_step(z, y)  # server -> client: dL/dz (a plain tensor); server updates itself
    client.backward(dz)           # client updates with dz and, for NoPeek, its own DCOR term

The server's loss is ``alpha_task * CE(server(z), y)``. The client's DCOR is the paper's
(Euclidean distances) unless it is built with ``distance="squared"`` (the squared-distance statistic
of several public codes, :func:`nopeek_repro.dcor.distance_correlation_squared_distances`). The client's update follows
``alpha_task * dCE/dz`` (from the server) plus ``alpha_dcor * dDCOR(X, Z)/dtheta``, computed where
the raw data lives; together they are the gradient of the NoPeek objective
``alpha_dcor * DCOR(X, Z) + alpha_task * CE``. Only detached copies cross the boundary, so the
two objects could run in different processes.

Each party keeps its network on its own device (CPU or CUDA); a tensor that arrives is moved to
the receiver's device, and :meth:`Client.activations` / :meth:`Server.predict` hand back CPU
tensors.

The uniform-noise defence lives on the client too: it adds U(-b, b) to what it sends, in training
and at test time. The attacker (an honest-but-curious server) only ever sees the sent tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dcor import STATISTICS

OPTIMIZERS = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
}
"""The client's optimisers (``train.client_optimizer``): Adam, or SGD with momentum 0.9. The server's is Adam."""


def _send(t: Tensor) -> Tensor:
    """What crosses the wire: a detached copy with no autograd history."""
    return t.detach().clone()


def _device_of(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@dataclass
class ClientStep:
    dcor: float  # the trained statistic of the batch (DCOR(X, Z), V-statistic, unless squared), before noise
    grad_task: float = float("nan")  # |dL_task/dtheta| on the client's parameters (diagnosed steps only)
    grad_dcor: float = float("nan")  # |alpha_dcor * dDCOR/dtheta| on the client's parameters (diagnosed steps only)


def _norm(grads: tuple[Tensor | None, ...]) -> float:
    """Euclidean norm of a gradient over all parameters (a parameter with no gradient counts 0)."""
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))  # type: ignore[arg-type]


class Client:
    """Holds the raw inputs and the layers up to the cut."""

    def __init__(
        self,
        net: nn.Module,
        lr: float,
        alpha_dcor: float = 0.0,
        noise: float = 0.0,
        seed: int = 0,
        distance: str = "euclidean",
        optimizer: str = "adam",
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if distance not in STATISTICS:
            raise ValueError(f"distance must be one of {', '.join(STATISTICS)}, got {distance!r}")
        if alpha_dcor < 0:
            raise ValueError(f"alpha_dcor must be >= 0, got {alpha_dcor}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0 (half-width b of U(-b, b)), got {noise}")
        self.net = net
        self.device = _device_of(net)
        self.alpha_dcor = alpha_dcor
        self.noise = noise
        self.distance = distance
        self._statistic = STATISTICS[distance]
        self.optimizer = OPTIMIZERS[optimizer](net.parameters(), lr)
        self._gen = torch.Generator()
        self.reset_noise(seed)
        self._x: Tensor | None = None
        self._z: Tensor | None = None

    def reset_noise(self, seed: int) -> None:
        """Restart the noise stream (uniform-noise defence) from ``seed``, so what is sent for given
        inputs does not depend on how many batches were sent before."""
        self._gen.manual_seed(seed + 7919)

    def _noisy(self, z: Tensor) -> Tensor:
        if self.noise == 0:
            return z
        u = torch.rand(z.shape, generator=self._gen, dtype=z.dtype).to(z.device)
        return z + (2.0 * u - 1.0) * self.noise

    def forward(self, x: Tensor) -> Tensor:
        """Training forward pass; returns the activations sent to the server."""
        self.net.train()
        x = x.to(self.device)
        self._x = x
        self._z = self.net(x)
        return _send(self._noisy(self._z))

    def backward(self, grad_z: Tensor, diagnose: bool = False) -> ClientStep:
        """Update from the server's gradient and, for NoPeek, the DCOR term.

        With ``diagnose``, also measure the two terms' gradient norms on the client's parameters
        (``grad_task`` from the server's dL/dz, ``grad_dcor`` = alpha_dcor * dDCOR/dtheta) with
        separate ``autograd.grad`` calls before the update; the update itself is unchanged (the
        same backward on the same graph, to the last bit)."""
        if self._x is None or self._z is None:
            raise RuntimeError("Client.backward called before Client.forward")
        x = self._x.reshape(len(self._x), -1)
        grad_z = grad_z.to(self._z)
        self.optimizer.zero_grad(set_to_none=True)
        step = ClientStep(dcor=float("nan"))
        if self.alpha_dcor > 0:
            dcor = self._statistic(x, self._z)
            if diagnose:
                params = [p for p in self.net.parameters() if p.requires_grad]
                task = torch.autograd.grad(self._z, params, grad_z, retain_graph=True, allow_unused=True)
                term = torch.autograd.grad(self.alpha_dcor * dcor, params, retain_graph=True, allow_unused=True)
                step.grad_task, step.grad_dcor = _norm(task), _norm(term)
            torch.autograd.backward([self._z, self.alpha_dcor * dcor], [grad_z, None])
        else:
            with torch.no_grad():
                dcor = self._statistic(x, self._z)
            if diagnose:
                params = [p for p in self.net.parameters() if p.requires_grad]
                task = torch.autograd.grad(self._z, params, grad_z, retain_graph=True, allow_unused=True)
                step.grad_task, step.grad_dcor = _norm(task), 0.0
            self._z.backward(grad_z)
        self.optimizer.step()
        self._x = self._z = None
        step.dcor = float(dcor.detach())
        return step

    @torch.no_grad()
    def activations(self, x: Tensor, batch_size: int = 512) -> Tensor:
        """Evaluation forward pass: what the server sees for inputs ``x`` (noise included)."""
        self.net.eval()
        out = [self._noisy(self.net(x[i : i + batch_size].to(self.device))).cpu() for i in range(0, len(x), batch_size)]
        return _send(torch.cat(out))

    @torch.no_grad()
    def clean_activations(self, x: Tensor, batch_size: int = 512) -> Tensor:
        """The cut-layer output before any noise (for measuring the client itself)."""
        self.net.eval()
        return torch.cat([self.net(x[i : i + batch_size].to(self.device)).cpu() for i in range(0, len(x), batch_size)])


@dataclass
class ServerStep:
    loss: float  # alpha_task * CE of the batch
    correct: int


class Server:
    """Holds the labels and the layers after the cut."""

    def __init__(self, net: nn.Module, lr: float, alpha_task: float = 1.0) -> None:
        if alpha_task <= 0:
            raise ValueError(f"alpha_task must be > 0, got {alpha_task}")
        self.net = net
        self.device = _device_of(net)
        self.alpha_task = alpha_task
        self.optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        self.last = ServerStep(loss=float("nan"), correct=0)

    def train_step(self, z: Tensor, y: Tensor) -> Tensor:
        """One update on received activations; returns dL/dz for the client."""
        self.net.train()
        z = z.detach().to(self.device).requires_grad_(True)
        y = y.to(self.device)
        logits = self.net(z)
        loss = self.alpha_task * F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.last = ServerStep(loss=float(loss.detach()), correct=int((logits.argmax(1) == y).sum()))
        assert z.grad is not None
        return _send(z.grad)

    @torch.no_grad()
    def predict(self, z: Tensor, batch_size: int = 512) -> Tensor:
        """Class predictions for received activations."""
        self.net.eval()
        return torch.cat(
            [self.net(z[i : i + batch_size].to(self.device)).argmax(1).cpu() for i in range(0, len(z), batch_size)]
        )
