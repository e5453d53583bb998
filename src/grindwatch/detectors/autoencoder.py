"""The 1-D convolutional autoencoder detector: training loop and scoring."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence

import numpy as np

from grindwatch.detectors.base import BaseDetector, EpochCallback
from grindwatch.exceptions import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["AutoencoderDetector", "LOSSES"]

# PyTorch initialises layer weights from its global generator, which all threads
# share. The lock is held from seeding to the end of construction, so networks
# built in parallel threads (tune --jobs) get the weights of a network built alone.
_INIT_LOCK = threading.Lock()

# Bytes of the largest activation of one scoring batch. Timed on a 2-core AMD
# EPYC with a 32 MiB L3 cache; an estimate for other CPUs.
_INFERENCE_BYTES = 4 << 20

LOSSES = ("mse", "mae", "huber")


class AutoencoderDetector(BaseDetector):
    """Score windows by how badly a convolutional autoencoder rebuilds them.

    The network trains on normal windows with the chosen loss; a window's score is
    the mean of the same loss over its elements. Training stops early when the loss
    on a held-out validation share has not improved for ``patience`` epochs, and the
    best weights are kept. With the same ``random_state`` and thread count, CPU runs
    give the same scores.

    Parameters
    ----------
    filters, kernel_sizes, strides : sequence of int
        Per encoder layer; all three must have the same length (the depth).
    latent_size : int or None
        Dense bottleneck width; None for a fully convolutional network.
    loss : {"mse", "mae", "huber"}
    learning_rate : float
        Adam step size.
    batch_size : int
    epochs : int
        Maximum number of passes over the training windows.
    patience : int
        Epochs without validation improvement before stopping.
    validation_fraction : float
        Share of training windows held out for early stopping, in [0, 0.5).
    random_state : int

    Attributes
    ----------
    history_ : list of dict
        ``epoch``, ``train_loss`` and ``val_loss`` per epoch.
    best_epoch_ : int
    n_parameters_ : int
        Trainable weights and biases of the fitted network.
    """

    family = "autoencoder"

    def __init__(
        self,
        filters: Sequence[int] = (16, 32),
        kernel_sizes: Sequence[int] = (7, 5),
        strides: Sequence[int] = (2, 2),
        latent_size: int | None = 16,
        loss: str = "mse",
        learning_rate: float = 1e-3,
        batch_size: int = 64,
        epochs: int = 30,
        patience: int = 5,
        validation_fraction: float = 0.1,
        random_state: int = 0,
    ) -> None:
        self.filters = filters
        self.kernel_sizes = kernel_sizes
        self.strides = strides
        self.latent_size = latent_size
        self.loss = loss
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def _validate(self, X: np.ndarray) -> None:
        depth = len(self.filters)
        if not depth or len(self.kernel_sizes) != depth or len(self.strides) != depth:
            raise ConfigError(
                f"filters {list(self.filters)}, kernel_sizes {list(self.kernel_sizes)} "
                f"and strides {list(self.strides)} need one entry per layer each"
            )
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} is invalid; use one of {LOSSES}")
        if not 0 <= self.validation_fraction < 0.5:
            raise ConfigError(
                f"validation_fraction={self.validation_fraction} must be in [0, 0.5)"
            )
        reduction = int(np.prod(self.strides))
        if X.shape[-1] < reduction:
            # The input is what the front end returns, so its length is the
            # window length for raw windows, the band count for spectra and the
            # feature count for the features front end.
            raise ConfigError(
                f"the encoder's input has {X.shape[-1]} values per channel (window "
                "samples, spectrum bands or window features), fewer than its total "
                f"stride {reduction}; use longer windows, more spectrum bands "
                "(frontend.n_bands), fewer layers or stride 1"
            )

    def _loss_fn(self):  # noqa: ANN202
        from torch import nn

        return {"mse": nn.MSELoss, "mae": nn.L1Loss, "huber": nn.HuberLoss}[self.loss](
            reduction="none"
        )

    def _fit(self, X: np.ndarray, on_epoch: EpochCallback | None) -> None:
        import torch

        from grindwatch.nets import ConvAutoencoder

        self._validate(X)
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(X.shape[0])
        n_val = int(round(X.shape[0] * self.validation_fraction))
        if n_val == 0 or X.shape[0] - n_val < 1:
            n_val = 0
        train = torch.from_numpy(X[order[n_val:]])
        val = torch.from_numpy(X[order[:n_val]]) if n_val else None

        with _INIT_LOCK:
            torch.manual_seed(self.random_state)
            self.net_ = ConvAutoencoder(
                X.shape[1],
                X.shape[2],
                list(self.filters),
                list(self.kernel_sizes),
                list(self.strides),
                self.latent_size,
            )
        # The fused update is one kernel per step; the default loops over the
        # parameters, and for these small networks that loop was a large part
        # of each training step on CPU.
        optimiser = torch.optim.Adam(
            self.net_.parameters(), lr=self.learning_rate, fused=True
        )
        loss_fn = self._loss_fn()
        generator = torch.Generator().manual_seed(self.random_state)

        self.history_: list[dict[str, float | None]] = []
        best_loss, best_state, stale = float("inf"), None, 0
        for epoch in range(self.epochs):
            train_loss = self._train_epoch(train, optimiser, loss_fn, generator)
            val_loss = self._mean_loss(val, loss_fn) if val is not None else None
            self.history_.append(
                {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
            )
            logger.debug("epoch %d: train %.5f, val %s", epoch, train_loss, val_loss)
            if on_epoch is not None:
                on_epoch(epoch, train_loss, val_loss)

            monitored = val_loss if val_loss is not None else train_loss
            if monitored < best_loss - 1e-7:
                best_loss, stale = monitored, 0
                best_state = copy.deepcopy(self.net_.state_dict())
                self.best_epoch_ = epoch
            else:
                stale += 1
                if stale >= self.patience:
                    logger.info("early stop after epoch %d", epoch)
                    break
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        elif self.history_:
            # No epoch gave a finite loss, so the weights may be NaN.
            raise ConfigError(
                f"autoencoder training diverged: the loss was never finite "
                f"(last training loss {self.history_[-1]['train_loss']:.4g}); "
                f"lower learning_rate={self.learning_rate:g}"
            )
        self.net_.eval()

    def _train_epoch(self, train, optimiser, loss_fn, generator) -> float:  # noqa: ANN001
        import torch

        self.net_.train()
        order = torch.randperm(train.shape[0], generator=generator)
        total = 0.0
        for begin in range(0, train.shape[0], self.batch_size):
            batch = train[order[begin : begin + self.batch_size]]
            optimiser.zero_grad()
            loss = loss_fn(self.net_(batch), batch).mean()
            loss.backward()
            optimiser.step()
            total += loss.item() * batch.shape[0]
        return total / train.shape[0]

    def _mean_loss(self, data, loss_fn) -> float:  # noqa: ANN001
        import torch

        self.net_.eval()
        step = self._inference_step()
        total = 0.0
        with torch.inference_mode():
            for begin in range(0, data.shape[0], step):
                batch = data[begin : begin + step]
                total += float(loss_fn(self.net_(batch), batch).sum())
        return total / max(data.numel(), 1)

    @property
    def n_parameters_(self) -> int:
        # A property, so a bundle saved by an older version has it too.
        return sum(p.numel() for p in self.net_.parameters() if p.requires_grad)

    def _inference_step(self) -> int:
        """Windows per forward pass when scoring.

        Large batches amortise PyTorch's per-call overhead, but once a batch's
        largest activation outgrows the CPU cache every layer waits on memory:
        on 4 x 1024 raw windows, batches of 512 scored 3 times slower than
        batches of 128. The step keeps that activation near ``_INFERENCE_BYTES``.
        """
        step = getattr(self, "inference_step_", None)
        if step is not None:
            return step
        import torch

        largest = 0

        def record(_module, _inputs, output) -> None:  # noqa: ANN001
            nonlocal largest
            largest = max(largest, int(output.numel()))

        # The hooks go on a copy, because on self.net_ they would also record
        # the batches that other threads score meanwhile. The HTTP service does
        # so with bundles saved before this step was stored.
        net = copy.deepcopy(self.net_).eval()
        for module in net.modules():
            if not list(module.children()):
                module.register_forward_hook(record)
        probe = torch.zeros(1, net.encoder[0].in_channels, net.length)
        with torch.inference_mode():
            net(probe)
        per_window = max(largest, 1) * 4  # float32 bytes
        self.inference_step_ = int(np.clip(_INFERENCE_BYTES // per_window, 16, 4096))
        return self.inference_step_

    def _explain(self, X: np.ndarray) -> np.ndarray:
        import torch

        loss_fn = self._loss_fn()
        self.net_.eval()
        parts = []
        step = self._inference_step()
        with torch.inference_mode():
            for begin in range(0, X.shape[0], step):
                batch = torch.from_numpy(np.ascontiguousarray(X[begin : begin + step]))
                parts.append(loss_fn(self.net_(batch), batch).numpy())
        return np.concatenate(parts)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._explain(X).mean(axis=(1, 2)).astype(np.float64)

    def _score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # One forward pass: the score is the mean of the per-element loss.
        contributions = self._explain(X)
        return contributions.mean(axis=(1, 2)).astype(np.float64), contributions
