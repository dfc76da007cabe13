"""SegLab's shipped checkpoints: `weights/<name>.pt` with a model card `weights/<name>.json`.

A checkpoint holds the builder's keyword arguments and the state dict in float16 (half the
bytes; these small networks lose nothing measurable, and the card's mIoU is measured after the
round trip). It is read with `torch.load(weights_only=True)`, so a checkpoint can never run code.
The card says what the network is, how well it does on held-out scenes, the exact command
that made it, and the SHA-256 of the checkpoint file: `load_checkpoint` refuses a file whose
bytes no longer hash to it (a bad copy, a disk error, a hand edit), because a damaged float16
tensor still loads and silently gives wrong answers.

Hashing is done once per process for each version of a file (`file_sha256` remembers the digest
by path, size, modification time and inode), so a server that loads a model again, or a test
that loads it twice, reads the file's bytes for the hash only once. `seg.models.pretrained`
checks torchvision's cached files with the same helper.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from pathlib import Path

import torch
from torch import nn

#: The folder of shipped checkpoints (the repository's `weights/`).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


#: How many times this process read each file (by resolved path) to compute its SHA-256:
#: once per version of the file, however often it is loaded.
HASHED: Counter[str] = Counter()

_digests: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> hex
_path_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def _version(path: Path) -> tuple[str, int, int, int]:
    info = os.stat(path)
    return str(path), info.st_size, info.st_mtime_ns, info.st_ino


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of the file at `path`, computed once per version of the file.

    The digest is remembered for this process by (path, size, modification time, inode): a
    second call on an unchanged file returns at once, a file rewritten or replaced since is
    read again. Two threads asking for the same file at once read it once.

    Example:
        >>> len(file_sha256(checkpoint_path("fcn8s")))
        64
    """
    path = Path(path).resolve()
    with _locks_lock:
        lock = _path_locks.setdefault(str(path), threading.Lock())
    with lock:
        version = _version(path)
        if version in _digests:
            return _digests[version]
        sha256 = hashlib.sha256()
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                sha256.update(chunk)
        HASHED[str(path)] += 1
        digest = sha256.hexdigest()
        if _version(path) == version:  # not rewritten while it was read
            _digests[version] = digest
        return digest


def remember_sha256(path: Path, digest: str) -> None:
    """Record `digest` as the SHA-256 of the file at `path` as it is now, for `file_sha256`.

    For a writer that hashed the bytes as it wrote them (a verified download), so that the
    first load does not read the file a second time.
    """
    path = Path(path).resolve()
    _digests[_version(path)] = digest


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

    Before anything is read from it, the file must hash to the `sha256` its card records (see
    `file_sha256`: once per process and version of the file).

    Raises:
        CheckpointError: the file is missing, damaged since its card was written, truncated,
            not a SegLab checkpoint with a card, or unsafe.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. Train one with "
                              f"`python -m seg train {path.stem}`.")
    expected = read_card(path.stem, path.parent).get("sha256")
    if expected:
        _verify(path, expected)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged zip/pickle
        raise CheckpointError(
            f"The checkpoint {path} is damaged or not a SegLab checkpoint "
            f"({type(error).__name__}). Delete it and retrain with "
            f"`python -m seg train {path.stem}`.") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "builder_kwargs" not in blob:
        raise CheckpointError(f"The file {path} is not a SegLab checkpoint (it has no "
                              f"'state_dict' and 'builder_kwargs').")
    if not expected:
        raise CheckpointError(
            f"The checkpoint {path} cannot be checked: its model card "
            f"{card_path(path.stem, path.parent)}, which records the file's SHA-256, is missing "
            f"or has none. {_how_to_restore(path)}")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    return dict(blob["builder_kwargs"]), state


def _verify(path: Path, expected: str) -> None:
    """Refuse `path` unless its bytes hash to `expected` (its card's SHA-256)."""
    digest = file_sha256(path)
    if digest != expected:
        raise CheckpointError(
            f"The checkpoint {path} is damaged: its bytes changed after it was made (SHA-256 "
            f"{digest[:8]}…, its card {card_path(path.stem, path.parent).name} says "
            f"{expected[:8]}…), so its weights would be wrong. {_how_to_restore(path)}")


def _how_to_restore(path: Path) -> str:
    """The sentence that says how to get a good copy of checkpoint `path` back."""
    retrain = f"retrain it with `python -m seg train {path.stem}`"
    if path.resolve().parent == WEIGHTS_DIR:
        return (f"Restore SegLab's copy with `git checkout -- weights/{path.name} "
                f"weights/{path.stem}.json`, or {retrain}.")
    return f"Copy it and its card again, or {retrain}."


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
