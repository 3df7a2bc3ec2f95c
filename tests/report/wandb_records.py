"""Read an offline W&B run's records (`run-*.wandb`) without a server.

wandb 0.31 has no Python reader of its own (the old `wandb.sdk.internal.datastore` is
gone), so this reads the format directly: a 7-byte W&B header (":W&B", magic 0xBEE1,
version 0) followed by a LevelDB log (32 KiB blocks; each record a 7-byte header:
crc32c, length, type FULL/FIRST/MIDDLE/LAST) whose payloads are `Record` protobufs.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Iterator

_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> Iterator[bytes]:
    assert data[:4] == b":W&B", "not a W&B offline run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer: padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def records(run_file: Path) -> list[Any]:
    """Every `wandb_internal_pb2.Record` of an offline run file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = []
    for payload in _payloads(Path(run_file).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        out.append(record)
    return out


def run_file(offline_dir: Path) -> Path:
    found = list(Path(offline_dir).glob("run-*.wandb"))
    assert len(found) == 1, found
    return found[0]


def item_key(item: Any) -> str:
    """The logged name of a history/summary item (dict values such as tables and
    histograms are stored one leaf at a time, under `nested_key`)."""
    return item.key or (item.nested_key[0] if item.nested_key else "")
