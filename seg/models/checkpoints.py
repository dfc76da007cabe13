"""SegLab's shipped checkpoints: `weights/<name>.pt` with a model card `weights/<name>.json`.

A checkpoint holds the builder's keyword arguments and the state dict in float16 (half the
bytes; these small networks lose nothing measurable, and the card's mIoU is measured after the
round trip). It is read with `torch.load(weights_only=True)`, so a checkpoint can never run code.
The card says what the network is, how well it does on held-out scenes, and the exact command
that made it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

#: The folder of shipped checkpoints (the repository's `weights/`).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


def checkpoint_path(name: str, directory: Path | None = None) -> Path:
    """Path of the checkpoint of SegLab model `name`."""
    return Path(directory or WEIGHTS_DIR) / f"{name}.pt"


def card_path(name: str, directory: Path | None = None) -> Path:
    """Path of the model card of SegLab model `name`."""
    return Path(directory or WEIGHTS_DIR) / f"{name}.json"


def has_checkpoint(name: str, directory: Path | None = None) -> bool:
    """Whether SegLab model `name` has a shipped checkpoint."""
    return checkpoint_path(name, directory).is_file()


def read_card(name: str, directory: Path | None = None) -> dict:
    """The model card of `name` as a dict, or {} when there is none."""
    path = card_path(name, directory)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"The model card {path} is not valid JSON ({error}).") from None


def save_checkpoint(module: nn.Module, name: str, builder_kwargs: dict, card: dict,
                    directory: Path | None = None) -> Path:
    """Write `module`'s weights (float16) and its card; returns the checkpoint path.

    The card gains `file_bytes` and `sha256` of the written checkpoint.
    """
    path = checkpoint_path(name, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).cpu()
             for k, v in module.state_dict().items()}
    torch.save({"name": name, "builder_kwargs": dict(builder_kwargs), "state_dict": state}, path)
    data = path.read_bytes()
    card = dict(card, file_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    card_path(name, directory).write_text(json.dumps(card, indent=2) + "\n")
    return path


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """Read a checkpoint file safely: returns (builder_kwargs, float32 state dict).

    Raises:
        CheckpointError: the file is missing, truncated, not a SegLab checkpoint, or unsafe.
    """
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {path}. Train one with "
                              f"`python -m seg train {path.stem}`.") from None
    except Exception as error:  # torch raises many kinds for a damaged zip/pickle
        raise CheckpointError(
            f"The checkpoint {path} is damaged or not a SegLab checkpoint "
            f"({type(error).__name__}). Delete it and retrain with "
            f"`python -m seg train {path.stem}`.") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "builder_kwargs" not in blob:
        raise CheckpointError(f"The file {path} is not a SegLab checkpoint (it has no "
                              f"'state_dict' and 'builder_kwargs').")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    return dict(blob["builder_kwargs"]), state


def load_into(module: nn.Module, state: dict, path: Path) -> nn.Module:
    """Load `state` into `module`, turning size mismatches into one sentence naming `path`."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = sorted(wrong)[0]
            detail.append(f"{len(wrong)} of another shape (e.g. {k}: file "
                          f"{tuple(state[k].shape)}, network {tuple(own[k].shape)})")
        raise CheckpointError(f"The checkpoint {path} does not fit this network: "
                              f"{'; '.join(detail)}. It was made for another version; retrain "
                              f"with `python -m seg train {Path(path).stem}`.")
    module.load_state_dict(state)
    return module
