"""Write offline.html: DVC's plots page with vega, vega-lite and vega-embed inlined, so `dvc plots show`
renders in a browser with no network (DVC's own page loads them from a CDN).

    cd configs/dvc_plots && python make_template.py      # needs npm; the output is committed

The versions are the ones DVC's page asks for (dvc_render.vega.VegaRenderer.SCRIPTS), from their npm
packages; each library's licence is kept beside its code.
"""
from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

LIBS = [("vega", "5.20.2", "build/vega.min.js"), ("vega-lite", "5.2.0", "build/vega-lite.min.js"),
        ("vega-embed", "6.18.2", "build/vega-embed.min.js")]

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- {versions}: inlined from their npm packages, no network needed (configs/dvc_plots/make_template.py) -->
{scripts}
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main() -> None:
    here = Path(__file__).resolve().parent
    scripts, versions = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, path in LIBS:
            tgz = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=tmp, check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
            with tarfile.open(Path(tmp) / tgz) as tar:
                code = tar.extractfile(f"package/{path}").read().decode()
                licence = tar.extractfile("package/LICENSE").read().decode()
            # a source map is only fetched with developer tools open, and it is not shipped: drop the pointer
            code = "\n".join(line for line in code.splitlines() if not line.startswith("//# sourceMappingURL="))
            if "</script" in code:
                raise SystemExit(f"{name}: contains </script, cannot be inlined")
            scripts.append(f"    <script>/* {name} {version}\n{licence.strip()}\n*/\n{code}\n    </script>")
            versions.append(f"{name} {version}")
    out = here / "offline.html"
    out.write_text(PAGE.format(versions=", ".join(versions), scripts="\n".join(scripts)))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
