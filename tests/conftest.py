"""Suite-wide settings: one torch thread; the browser tests' shared JupyterLab server, browser and gallery.

The tests' models are tiny: with several threads torch spends its time synchronising them, and on a
busy 2-core machine (CI, or a laptop running JupyterLab) a tiny forward/backward pass became 35x slower
with 2 threads than with 1. Benchmarks set their own thread count.
"""

import pytest
import torch

torch.set_num_threads(1)


# ----- the browser tests' shared server, browser and gallery (see browser_support.py) --------------------

GALLERY = "00_widgets.ipynb"


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One JupyterLab server for every browser test (a copy of lectures/, outputs cleared)."""
    from browser_support import start_lab

    with start_lab(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test; each test opens its own page."""
    from browser_support import launch_browser

    with launch_browser() as b:
        yield b


@pytest.fixture(scope="session")
def gallery(lab, browser, tmp_path_factory):
    """lectures/00_widgets.ipynb, run once (Restart Kernel and Run All Cells) for every widget's browser test.

    A test drives its own widget inside ``with gallery.reporting(tmp_path) as page:``.
    """
    from browser_support import open_notebook

    # the gallery trains small networks (CurvatureExplorer, NormalizationEffect): a run takes longer than a lecture's
    with open_notebook(browser, lab, GALLERY, tmp_path_factory.mktemp("gallery"), run_timeout=120,
                       budget=300) as notebook:
        yield notebook
