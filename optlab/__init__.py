"""optlab: how neural networks are optimized, as a library a course can open up.

Subpackages
-----------
optlab.optim      optimizers as ``torch.optim.Optimizer`` subclasses over plain update kernels
optlab.curvature  Hessians, Hessian-vector products, eigenvalues and learning-rate recipes
optlab.widgets    interactive widgets: a pure model (numbers) plus a thin ipywidgets view
optlab.grading    release and grade the course's homework
"""

__version__ = "0.1.0"
