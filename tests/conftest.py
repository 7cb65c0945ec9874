"""Suite-wide settings: one torch thread.

The tests' models are tiny: with several threads torch spends its time synchronising them, and on a
busy 2-core machine (CI, or a laptop running JupyterLab) a tiny forward/backward pass became 35x slower
with 2 threads than with 1. Benchmarks set their own thread count.
"""

import torch

torch.set_num_threads(1)
