"""A tiny safetensors reader/writer (the format: 8-byte little-endian header length, a JSON header
{name: {dtype, shape, data_offsets}} and the raw little-endian data). Written here because the
`safetensors` Python package is not part of Debian's python3-torch set-up."""
import json
import struct

import torch

_DTYPES = {
    torch.float64: ("F64", 8),
    torch.float32: ("F32", 4),
    torch.float16: ("F16", 2),
    torch.bfloat16: ("BF16", 2),
    torch.int32: ("I32", 4),
    torch.int8: ("I8", 1),
    torch.int64: ("I64", 8),
    torch.bool: ("BOOL", 1),
}
_BY_NAME = {name: dt for dt, (name, _) in _DTYPES.items()}


def save(tensors, path):
    """Write {name: tensor} with names sorted, tensors packed back to back in that order."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        dtype_name, _ = _DTYPES[t.dtype]
        # numpy may be missing: view the storage as bytes through torch itself.
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() > 0 else b""
        header[name] = {"dtype": dtype_name, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # align the data to 8 bytes, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load(path):
    """Read a file written by save() (or any safetensors file with the dtypes above)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _BY_NAME[info["dtype"]]
        start, end = info["data_offsets"]
        buf = bytearray(data[base + start : base + end])
        flat = torch.frombuffer(buf, dtype=dt) if len(buf) > 0 else torch.empty(0, dtype=dt)
        out[name] = flat.reshape(info["shape"])
    return out
