"""The HTML drift report in a real browser (headless Chromium, network off): every feature's section
shows its plot, decoded, and the page renders to a non-blank screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.monitoring.drift import compute_drift
from shipyard.monitoring.report_html import render_html
from tests.conftest import missing_external

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Counts, per feature section, the images the browser really decoded; written into the DOM on load.
PROBE = """<script>
window.addEventListener("load", () => {
  const sections = Array.from(document.querySelectorAll("section.feature"));
  const result = sections.map(s => ({
    id: s.id,
    heading: s.querySelector("h3").textContent,
    decoded: Array.from(s.querySelectorAll("img")).filter(i => i.complete && i.naturalWidth > 0).length,
    width: Math.max(0, ...Array.from(s.querySelectorAll("img")).map(i => i.getBoundingClientRect().width)),
  }));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",  # tests run as root in CI containers
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: the report must need none
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    if CHROMIUM is None:
        missing_external("needs Chromium (Debian package 'chromium'), not installed on this machine")
    rng = np.random.default_rng(5)
    n = 600
    reference = pd.DataFrame(
        {
            "area": rng.normal(1500, 300, n),
            "rooms": rng.integers(2, 9, n),
            "quality": rng.choice(["low", "mid", "high"], n),
            "garage": rng.choice(["yes", "no"], n),
            "_prediction": rng.normal(2e5, 4e4, n),
        }
    )
    current = reference.copy()
    current["area"] = rng.normal(2200, 300, n)
    current["quality"] = rng.choice(["low", "mid", "high"], n, p=[0.7, 0.2, 0.1])
    kinds = {"area": "numeric", "rooms": "numeric", "quality": "categorical", "garage": "categorical"}
    report = compute_drift(
        reference, current, kinds, "housing", "3", prediction_column="_prediction", prediction_kind="numeric"
    )
    folder = tmp_path_factory.mktemp("report")
    path = folder / "drift.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path, [*kinds, "_prediction"]


def test_every_feature_section_shows_its_plot(report_file: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, features = report_file
    probed = tmp_path / "probed.html"
    probed.write_text(path.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), "utf-8")
    done = chromium("--dump-dom", probed.as_uri(), profile=tmp_path / "profile")
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output; chromium said: {done.stderr[-2000:]}"
    sections = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(sections) == len(features)  # one section per feature, prediction included
    for section, feature in zip(sections, features, strict=True):
        assert section["heading"].startswith(feature)
        assert section["decoded"] == 1, section  # exactly one plot, and the browser could decode it
        assert section["width"] > 200, section  # laid out at a readable size
    drifted = [s["heading"].split(" — ")[0] for s in sections if s["heading"].endswith("— drifted")]
    assert set(drifted) >= {"area", "quality"}


def test_the_report_renders_to_a_non_blank_screenshot(
    report_file: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from PIL import Image

    path, _ = report_file
    shot = tmp_path / "report.png"
    done = chromium(
        f"--screenshot={shot}", "--window-size=1280,2400", path.as_uri(), profile=tmp_path / "profile"
    )
    assert shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 200  # text, table and plots, not an empty page
    # the plots' bars are drawn in colour; a page of only text and rules would be grey
    coloured = sum(count for count, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 60)
    assert coloured > 0.01 * image.size[0] * image.size[1]
