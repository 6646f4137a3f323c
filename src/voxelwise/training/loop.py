"""One training loop for every task: devices, AMP, checkpoints, resume, early stopping, logs.

The task hands in what is particular to it (the batches, the loss, a ``validate`` function that
returns metrics); the loop owns the rest. Randomness is derived from ``(seed, epoch)`` at the
start of every epoch, so a run resumed from ``checkpoint_last.pt`` draws the same batches and
augmentations as an uninterrupted one and ends with the same weights.
"""

from __future__ import annotations

import csv
import io
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic
from voxelwise.models.checkpoint import (
    check_identity,
    normalise_identity,
    read_checkpoint,
    save_checkpoint,
)
from voxelwise.models.registry import model_spec

GRADIENT_CLIP = 12.0  # nnU-Net's gradient-norm clip; keeps SGD with momentum 0.99 stable
LAST, BEST, HISTORY = "checkpoint_last.pt", "checkpoint_best.pt", "history.csv"


@dataclass
class TrainingConfig:
    """How to train; every field can come from a config file or the command line."""

    epochs: int = 50
    batch_size: int = 2
    learning_rate: float = 1e-2
    weight_decay: float = 3e-5
    optimizer: str = "sgd"          # "sgd" (momentum 0.99, nesterov) | "adamw"
    schedule: str = "poly"          # "poly" | "cosine" | "constant"
    patience: int | None = None     # early stopping on the monitored metric
    seed: int = 0
    device: str = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: bool = True                # mixed precision, used only on CUDA
    threads: int | None = None      # torch CPU threads
    iterations_per_epoch: int | None = None  # None: one pass over train_batches


@dataclass
class TrainingResult:
    """What `fit` did: the best epoch and metric, one history row per epoch."""

    run_dir: Path
    best_epoch: int | None
    best_metric: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    monitor: str = "val_loss"

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / BEST

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / LAST


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); cuDNN picks deterministic kernels."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch, derived from the run's seed (independent streams per epoch)."""
    return int(np.random.SeedSequence([int(seed) % (2**32), int(epoch)]).generate_state(1)[0])


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first GPU when torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise InputError(None, f"unknown device {name!r} (auto, cpu, cuda, cuda:N)") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(None, f"device {name!r} requested but torch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(None, f"device {name!r}: only {torch.cuda.device_count()} GPU(s)")
    return device


def build_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=0.99,
                               nesterov=True, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.learning_rate,
                                 weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r} (sgd, adamw)")


def schedule_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Learning-rate multiplier at ``epoch`` (0-based) of ``epochs``."""
    progress = min(epoch / max(epochs, 1), 1.0)
    if schedule == "poly":
        return (1.0 - progress) ** 0.9
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {schedule!r} (poly, cosine, constant)")


def build_scheduler(optimizer: torch.optim.Optimizer,
                    config: TrainingConfig) -> torch.optim.lr_scheduler.LambdaLR:
    schedule_factor(config.schedule, 0, config.epochs)  # fails early on an unknown name
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: schedule_factor(config.schedule, epoch, config.epochs))


def _batches(batches: Iterable, count: int | None) -> Iterator:
    """One pass over ``batches``, or exactly ``count`` batches (restarting the iterable)."""
    if count is None:
        yield from batches
        return
    produced = 0
    while produced < count:
        empty = True
        for batch in batches:
            empty = False
            yield batch
            produced += 1
            if produced >= count:
                return
        if empty:
            return


@dataclass
class _State:
    epoch: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class _Trainer:
    """The per-run objects of `fit`, so each step is a short method."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 config: TrainingConfig, device: torch.device, description: str) -> None:
        self.model, self.loss_fn, self.config = model, loss_fn, config
        self.device, self.description = device, description
        self.amp = bool(config.amp and device.type == "cuda")
        self.optimizer = build_optimizer(model, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def train_epoch(self, batches: Iterable, epoch: int) -> tuple[float, int]:
        from tqdm.auto import tqdm

        self.model.train()
        total = torch.zeros((), device=self.device)
        steps = 0
        bar = tqdm(_batches(batches, self.config.iterations_per_epoch),
                   total=self.config.iterations_per_epoch, leave=False, disable=None,
                   desc=f"{self.description} {epoch}/{self.config.epochs}")
        for inputs, targets in bar:
            loss = self.step(inputs, targets)
            total += loss
            steps += 1
            if steps % 10 == 1:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.close()
        if steps == 0:
            raise InputError(None, "no training batches: the training set is empty")
        return float(total.item()) / steps, steps

    def step(self, inputs: Tensor, targets: Tensor) -> Tensor:
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            loss = self.loss_fn(self.model(inputs), targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.description}: the loss is {loss.item()}; "
                                     "lower the learning rate")
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), GRADIENT_CLIP)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach().float()

    def payload(self, state: _State, identity: dict, monitor: str, mode: str) -> dict:
        return {
            "identity": identity, "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "scaler_state": self.scaler.state_dict(), "epoch": state.epoch,
            "best_metric": state.best_metric, "best_epoch": state.best_epoch,
            "stale_epochs": state.stale_epochs, "history": state.history,
            "monitor": monitor, "mode": mode, "config": asdict(self.config),
        }

    def restore(self, payload: dict) -> _State:
        self.model.load_state_dict(payload["model_state"])
        self.optimizer.load_state_dict(payload["optimizer_state"])
        self.scheduler.load_state_dict(payload["scheduler_state"])
        if payload.get("scaler_state"):
            self.scaler.load_state_dict(payload["scaler_state"])
        factor = schedule_factor(self.config.schedule, int(payload["epoch"]), self.config.epochs)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor  # the schedule of this config (epochs may have grown)
        return _State(epoch=int(payload["epoch"]), best_metric=payload.get("best_metric"),
                      best_epoch=payload.get("best_epoch"),
                      stale_epochs=int(payload.get("stale_epochs", 0)),
                      history=list(payload.get("history", [])))


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, inputs: Iterable[Tensor],
                           device: torch.device | str = "cpu") -> int:
    """Recompute every batch-norm layer's running statistics as the plain average over the
    batches ``inputs`` (forward passes in train mode, no gradients); returns the layer count.

    The running statistics start at mean 0, variance 1 and follow the batches with momentum
    0.1, so after a few dozen steps the start still weighs 0.9**steps: where a layer's true
    variance is small (0.001 behind a stem convolution) eval mode then normalises with a
    variance 10 times too large, and a network that separates its training cases perfectly in
    train mode ranks them below chance in eval mode. Recalibrating before validating removes
    the start and the lag behind weights that change quickly. Momenta and mode are restored.
    """
    from torch.optim.swa_utils import update_bn  # resets, averages and restores, as described

    layers = [m for m in model.modules() if isinstance(m, _BATCH_NORMS) and m.track_running_stats]
    if layers:
        with torch.no_grad():
            update_bn(inputs, model, device)
    return len(layers)


def _validate(model: nn.Module, validate: Callable[[nn.Module], dict[str, float]] | None
              ) -> dict[str, float]:
    if validate is None:
        return {}
    model.eval()
    with torch.no_grad():
        metrics = validate(model)
    model.train()
    return {key: float(value) for key, value in metrics.items()}


def _improved(value: float, best: float | None, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _history_csv(history: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def _epoch_line(description: str, row: dict[str, Any], epochs: int, best: bool) -> str:
    shown = ("epoch", "train_loss", "learning_rate", "seconds", "batches")
    parts = [f"loss {row['train_loss']:.4f}"]
    parts += [f"{key} {value:.4f}" for key, value in row.items() if key not in shown]
    parts += [f"lr {row['learning_rate']:.2e}", f"{row['seconds']:.1f} s"]
    return (f"{description} epoch {row['epoch']}/{epochs}: {'  '.join(parts)}"
            f"{'  (best)' if best else ''}")


def _start(trainer: _Trainer, run_dir: Path, resume: bool, identity: dict, monitor: str,
           mode: str) -> _State:
    last = run_dir / LAST
    if not (resume and last.exists()):
        (run_dir / HISTORY).unlink(missing_ok=True)
        return _State()
    payload = read_checkpoint(last, trainer.device)
    check_identity(last, payload, identity)
    if (payload.get("monitor"), payload.get("mode")) != (monitor, mode):
        raise InputError(last, "checkpoint from another configuration (monitored "
                         f"{payload.get('monitor')} {payload.get('mode')}, now {monitor} {mode})")
    state = trainer.restore(payload)
    write_text_atomic(run_dir / HISTORY, _history_csv(state.history))
    print(f"{trainer.description}: resuming after epoch {state.epoch} from {last}", flush=True)
    return state


def fit(model: nn.Module, train_batches: Iterable[tuple[Tensor, Tensor]],
        loss_fn: Callable[[Tensor, Tensor], Tensor], run_dir: Path, config: TrainingConfig, *,
        validate: Callable[[nn.Module], dict[str, float]] | None = None,
        monitor: str = "val_loss", mode: str = "min", resume: bool = False,
        identity: dict | None = None, description: str = "train") -> TrainingResult:
    """Train ``model`` for ``config.epochs`` epochs, checkpointing every epoch into ``run_dir``.

    ``train_batches`` is iterated once per epoch (or for ``config.iterations_per_epoch``
    batches); its randomness should come from the global RNGs, which are seeded from
    ``(config.seed, epoch)`` at the start of each epoch. ``validate(model)`` (called in eval
    mode without gradients) returns metrics; ``monitor`` names the one that picks
    ``checkpoint_best.pt`` and stops early after ``config.patience`` epochs without improvement
    (``train_loss`` when there is no ``validate``). ``identity`` is stored in every checkpoint
    (the model's recipe is added as ``identity["model"]``); ``resume=True`` continues from
    ``checkpoint_last.pt`` and refuses one whose identity differs. Seed (`seed_everything`)
    before building the model so its initial weights are reproducible too.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    if validate is None and monitor.startswith("val"):
        monitor, mode = "train_loss", "min"
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # tiny gradients late in training slow CPUs many-fold
    identity = dict(identity or {})
    if "model" not in identity and model_spec(model) is not None:
        identity["model"] = model_spec(model)
    identity = normalise_identity(identity)
    model.to(device)
    trainer = _Trainer(model, loss_fn, config, device, description)
    state = _start(trainer, run_dir, resume, identity, monitor, mode)
    stopped = config.patience is not None and state.stale_epochs >= config.patience
    while state.epoch < config.epochs and not stopped:
        _run_epoch(trainer, state, train_batches, validate, monitor, mode, run_dir, identity)
        stopped = config.patience is not None and state.stale_epochs >= config.patience
    if stopped and state.epoch < config.epochs:
        print(f"{description}: stopped early after epoch {state.epoch}: no better {monitor} "
              f"for {config.patience} epochs (best {state.best_metric:.4f} at epoch "
              f"{state.best_epoch})", flush=True)
    return TrainingResult(run_dir, state.best_epoch, state.best_metric, state.history,
                          stopped_early=stopped and state.epoch < config.epochs, monitor=monitor)


def _run_epoch(trainer: _Trainer, state: _State, batches: Iterable, validate: Callable | None,
               monitor: str, mode: str, run_dir: Path, identity: dict) -> None:
    epoch = state.epoch + 1
    seed_everything(epoch_seed(trainer.config.seed, epoch))
    started = time.perf_counter()
    learning_rate = trainer.optimizer.param_groups[0]["lr"]
    loss, steps = trainer.train_epoch(batches, epoch)
    metrics = _validate(trainer.model, validate)
    row = {"epoch": epoch, "train_loss": loss, "learning_rate": learning_rate, "batches": steps,
           **metrics, "seconds": round(time.perf_counter() - started, 3)}
    if monitor not in row:
        raise ValueError(f"monitored metric {monitor!r} not among {sorted(row)}")
    improved = _improved(row[monitor], state.best_metric, mode)
    if improved:
        state.best_metric, state.best_epoch, state.stale_epochs = row[monitor], epoch, 0
    else:
        state.stale_epochs += 1
    trainer.scheduler.step()
    state.epoch = epoch
    state.history.append(row)
    payload = trainer.payload(state, identity, monitor, mode)
    save_checkpoint(run_dir / LAST, payload)
    if improved:
        save_checkpoint(run_dir / BEST, payload)
    write_text_atomic(run_dir / HISTORY, _history_csv(state.history))
    print(_epoch_line(trainer.description, row, trainer.config.epochs, improved), flush=True)
