"""The dashboard page as the API serves it at `GET /`: dashboard.html with the vendored chart
library (uPlot, MIT) inlined, one self-contained answer with no build step, and the
Content-Security-Policy that allows its inline scripts (by hash) and nothing from elsewhere."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from typing import Final

VENDORED: Final = ("uplot.min.css", "uplot.min.js", "uplot.LICENSE.txt")


def _dashboard() -> tuple[str, str]:
    folder = files("consumers.serving")
    style, library, licence = (folder.joinpath(name).read_text(encoding="utf-8") for name in VENDORED)
    page = (
        folder.joinpath("dashboard.html")
        .read_text(encoding="utf-8")
        .replace("<!--vendor:uplot.min.css-->", f"<style>{style}</style>")
        .replace("<!--vendor:uplot.min.js-->", f"<script>/*!\n{licence}*/\n{library}</script>")
    )
    digests = [
        base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        for script in re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    ]
    scripts = " ".join(f"'sha256-{digest}'" for digest in digests)
    policy = f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; connect-src 'self'"
    return page, policy


DASHBOARD, DASHBOARD_POLICY = _dashboard()
