"""NPZ: a network as plain arrays, for any runtime: one ``.npz`` file, NumPy's own format.

Arrays are named ``"<layer index>.<name>"`` (``0.weight``, ``0.bias``, ``2.running_mean``...);
the array ``layers.json`` (a 0-d string) is the network described as JSON (see
:meth:`fastgan.export.walk.Network.describe`): each layer's type, its spec's fields, the row
shapes it reads and makes, and its arrays' shapes. Rows are fastgan's: images channels-last.
"""

from __future__ import annotations

import json
from typing import IO

import numpy as np

from .walk import Network


def arrays(network: Network) -> dict[str, np.ndarray]:
    """Every array of ``network`` by its file name, and ``layers.json``."""
    named = {f"{index}.{name}": array
             for index, layer in enumerate(network.layers)
             for name, array in layer.arrays.items()}
    named["layers.json"] = np.array(json.dumps(network.describe()))
    return named


def write(network: Network, file: IO[bytes]) -> None:
    """Write ``network`` as an ``.npz`` into the open binary ``file`` (no pickles)."""
    np.savez(file, **arrays(network))
