r"""A correlated 2-D cloud: the inputs whose least-squares Hessian is a rotated, elongated ellipse.

Inputs :math:`x = m + R(\phi)\,\mathrm{diag}(s_1, s_2)\,z` with :math:`z \sim \mathcal N(0, I)`: a cloud with
mean :math:`m`, principal spreads :math:`s_1 \ge s_2` along directions rotated by :math:`\phi`, so the two
coordinates are correlated. Targets :math:`t = w_{\rm true}^\top x + \text{noise}`. For the linear
least-squares loss :math:`\frac1{2N}\sum(w^\top x - t)^2` the Hessian is the second-moment matrix
:math:`\frac1N\sum x x^\top = C + mm^\top`: the mean adds a large eigenvalue, the correlation tilts the
error ellipses off the axes; centering removes the first, decorrelating (Karhunen-Loève) the second,
and whitening makes the ellipses circles (deck 000, "Making the Hessian better conditioned").

Slide: Y. LeCun, deck 000, "Making the Hessian better conditioned" (center, decorrelate, normalize);
deck 002, "normalize the inputs".
"""

from __future__ import annotations

import numpy as np

from ..errors import check, is_integer, non_negative

#: the defaults: mean, spreads, angle of the principal axis, true weights
MEAN = (2.0, 1.0)
SPREADS = (2.0, 0.4)
ANGLE = np.pi / 5
W_TRUE = (0.5, -1.0)


def correlated_cloud_data(n: int = 200, seed: int = 0, mean=MEAN, spreads=SPREADS, angle: float = ANGLE,
                          noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    r"""``(X, t)``: ``n`` rows :math:`x = m + R(\phi)\mathrm{diag}(s)z` and :math:`t = w_{\rm true}^\top x + \text{noise}\,\epsilon`.

    Example:
        >>> X, t = correlated_cloud_data(1000)
        >>> bool(np.corrcoef(X.T)[0, 1] > 0.5)
        True
    """
    check("correlated_cloud_data", "n", n, is_integer(n) and n >= 2, "an integer >= 2")
    s = np.asarray(spreads, dtype=float)
    check("correlated_cloud_data", "spreads", spreads, s.shape == (2,) and bool(np.all(s > 0)), "two positive numbers")
    non_negative("correlated_cloud_data", "noise", noise)
    rng = np.random.default_rng(seed)
    c, si = np.cos(angle), np.sin(angle)
    R = np.array([[c, -si], [si, c]])
    X = np.asarray(mean, dtype=float) + rng.standard_normal((n, 2)) * s @ R.T
    t = X @ np.asarray(W_TRUE) + noise * rng.standard_normal(n)
    return X, t
