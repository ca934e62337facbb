"""The one way a figure leaves the project: folder made, PNG written, figure closed (a long run that drew
hundreds of figures would otherwise keep every one of them in memory)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 100, **savefig: object) -> Path:
    """Write `fig` to `path` (PNG) at `dpi`, then close it. `savefig`: options such as bbox_inches."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi, **savefig)
    plt.close(fig)
    return p
