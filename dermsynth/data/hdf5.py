"""Image bytes from HDF5 containers (ISIC 2024), refusing every way an entry can lead out of its file."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from dermsynth.data.records import CORRUPT_HDF5, MISSING_FILE, TOO_LARGE, UNREADABLE, UNSAFE_HDF5, ImageProblem

_h5_cache: dict[Path, h5py.File] = {}
# Filters HDF5 has built in (and h5py's LZF): any other id makes HDF5 search its plugin path and load a
# shared library the file asked for.
_BUILTIN_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32,
                    h5py.h5z.FILTER_SZIP, h5py.h5z.FILTER_NBIT, h5py.h5z.FILTER_SCALEOFFSET, h5py.h5z.FILTER_LZF}


def _h5_file(path: Path, file: str) -> h5py.File:
    if path not in _h5_cache:  # one handle per worker process; h5py opens are not free
        try:
            _h5_cache[path] = h5py.File(path, "r")
        except FileNotFoundError as e:
            raise ImageProblem(MISSING_FILE, f"{file}: {e}") from e
        except Exception as e:  # h5py raises OSError, KeyError or RuntimeError for a damaged container
            raise ImageProblem(UNREADABLE, f"{file}: hdf5: {e}") from e
    return _h5_cache[path]


def _is_vlen(dtype: np.dtype) -> bool:
    """Variable-length bytes or strings: their size is not in the header."""
    string = h5py.check_string_dtype(dtype)
    return h5py.check_vlen_dtype(dtype) is not None or (string is not None and string.length is None)


def _hdf5_entry(f: h5py.File, key: str, file: str, max_bytes: int) -> h5py.Dataset:
    """The dataset `key`, once it is known to hold its own bytes, inside this file, and no more than
    `max_bytes` of them. Nothing is read or followed before: an external link, a soft link, a virtual
    dataset or external raw storage would put bytes of any readable file into the training set, and a
    chunked dataset of 1 GB fill value costs a few bytes in the file."""
    try:
        link = f.get(key, getlink=True)
    except Exception as e:  # user-defined link types h5py cannot name
        raise ImageProblem(UNSAFE_HDF5, f"{file}: a link of an unknown type ({e})") from e
    if link is None:
        raise ImageProblem(MISSING_FILE, f"{file}: no such entry")
    if isinstance(link, h5py.ExternalLink):
        raise ImageProblem(UNSAFE_HDF5, f"{file}: an external link to {link.filename}:{link.path}")
    if isinstance(link, h5py.SoftLink):
        raise ImageProblem(UNSAFE_HDF5, f"{file}: a soft link to {link.path}, not an entry of its own")
    if not isinstance(link, h5py.HardLink):
        raise ImageProblem(UNSAFE_HDF5, f"{file}: a {type(link).__name__}, not an entry of its own")
    try:
        ds = f[key]
        if not isinstance(ds, h5py.Dataset):
            raise ImageProblem(CORRUPT_HDF5, f"{file}: a {type(ds).__name__.lower()}, not a dataset of image bytes")
        if ds.is_virtual:
            sources = sorted({s.file_name for s in ds.virtual_sources()})
            raise ImageProblem(UNSAFE_HDF5, f"{file}: a virtual dataset, its bytes mapped from {sources}")
        if ds.external:
            names = [e[0] for e in ds.external]
            raise ImageProblem(UNSAFE_HDF5, f"{file}: raw data stored in external file(s) {names}")
        dcpl = ds.id.get_create_plist()
        filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
        plugins = [fid for fid in filters if fid not in _BUILTIN_FILTERS]
        if plugins:
            raise ImageProblem(UNSAFE_HDF5, f"{file}: compressed with filter id(s) {plugins}, which HDF5 would load "
                                            "as plugins from outside the archive")
        if ds.dtype.kind == "O" and not _is_vlen(ds.dtype):
            raise ImageProblem(CORRUPT_HDF5, f"{file}: holds object references, not image bytes")
        declared = ds.size * ds.dtype.itemsize
        if not _is_vlen(ds.dtype) and declared > max_bytes:  # variable-length bytes lie in the file: checked once read
            raise ImageProblem(TOO_LARGE, f"{file}: declares {declared} bytes ({ds.shape} x {ds.dtype}) > "
                                          f"ingest.max_image_bytes={max_bytes}")
    except ImageProblem:
        raise
    except Exception as e:
        raise ImageProblem(CORRUPT_HDF5, f"{file}: {e}") from e
    return ds


def read_hdf5(path: Path, key: str, file: str, max_bytes: int) -> bytes:
    ds = _hdf5_entry(_h5_file(path, file), key, file, max_bytes)
    try:
        v = ds[()]
        data = v.tobytes() if isinstance(v, (np.void, np.ndarray)) else bytes(v)
    except Exception as e:
        raise ImageProblem(CORRUPT_HDF5, f"{file}: {e}") from e
    if len(data) > max_bytes:
        raise ImageProblem(TOO_LARGE, f"{file}: {len(data)} bytes > ingest.max_image_bytes={max_bytes}")
    return data
