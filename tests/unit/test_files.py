"""Byte-stable safetensors: the same tensors and metadata give the same bytes, every save."""
import hashlib

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dermsynth.files import canonicalise_safetensors


def test_metadata_order_no_longer_changes_the_bytes(tmp_path):
    meta = {str(i): "v" * i for i in range(16)}  # enough keys that the raw HashMap order varies between saves
    digests, raw = set(), set()
    for i in range(6):
        f = tmp_path / f"{i}.safetensors"
        save_file({"a": torch.arange(3.0), "b": torch.zeros(2, 2)}, f, metadata=meta)
        raw.add(hashlib.sha256(f.read_bytes()).hexdigest())
        canonicalise_safetensors(f)
        digests.add(hashlib.sha256(f.read_bytes()).hexdigest())
        with safe_open(f, "pt") as sf:
            assert sf.metadata() == meta and torch.equal(sf.get_tensor("a"), torch.arange(3.0))
    assert len(digests) == 1
    print(f"{len(raw)} distinct raw files became 1")
