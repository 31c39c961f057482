"""Synthetic takes as release sources: the core's adapter, named here for the builders' callers.

The adapter lives in the core (:mod:`mmface4d_datasets.release.synthetic_source`) because the core's
mini release uses it too; ``mmface4d build synthetic`` and the mini release make their sources the
same way.
"""

from mmface4d_datasets.release.synthetic_source import MAX_COUNT, SyntheticSource, synthetic_sources

__all__ = ["MAX_COUNT", "SyntheticSource", "synthetic_sources"]
