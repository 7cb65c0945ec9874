"""Experiments of the lectures: the few-dozen-line computations behind a slide's claim, with their numbers.

Each module serves one lecture; each function runs one experiment and returns plain numbers (a frozen
dataclass or arrays), which the lecture prints and plots (with :mod:`optlab.plot`) and
``tests/test_claims.py`` asserts. Models, data and optimizers come from :mod:`optlab.problems`,
:mod:`optlab.optim` and :func:`optlab.trajectory.run`; nothing here draws.

===========================  ==========================================================================
:mod:`.gd_quadratic`          lecture 01: runs read in the eigenbasis, ravine zig-zag, contours, local models
:mod:`.landscape_features`    lecture 02: convexity, symmetries, saddles, plateaux, paths, width/depth
:mod:`.sgd_tricks`            lecture 03: sample streams, SGD vs batch, redundancy, ordering, averaging
:mod:`.adaptive`              lecture 04: eigen speeds, the slide's NAG, planes, Rprop drift, passes, comparisons
:mod:`.curvature_measures`    lecture 05: costs in FLOPs, finite-difference HVP errors, power method, layer change
:mod:`.second_order`          lecture 06: SDLM against a tuned SGD sweep, units of a step, natural-gradient runs, PRONG autoencoder
:mod:`.normalization`         lecture 07: BN placements, learning-rate grids, saturation, BN as diagonal PRONG
:mod:`.landscape_up_close`    lecture 08: random critical points, gradient flow, random-walk control,
                              SGD diagnostics (gradient norm, g'Hg, optimal step)
===========================  ==========================================================================
"""
