"""Takes to fitted, topology-uniform mesh sequences on a CPU (docs/reconstruction.md).

- :mod:`~reconstruction.take_input`: one take's cameras, registered depth and landmarks, read
  through the core (``mmface4d_datasets.take_files``, ``mmface4d_datasets.camera``);
- :mod:`~reconstruction.align`: camera extrinsics from 3-D landmarks (Kabsch), refined by
  point-to-plane ICP;
- :mod:`~reconstruction.fitting`: the energies and the Gauss-Newton / Levenberg-Marquardt solver
  of stages 1 (landmarks) and 2 (RGB-D: depth of all cameras + landmarks + priors);
- :mod:`~reconstruction.offsets`: stage 3, per-vertex offsets by one sparse factorisation per take;
- :mod:`~reconstruction.smoothing`: the zero-phase Butterworth low-pass;
- :mod:`~reconstruction.anchor`: the autograd-Adam implementation of the same energy (torch);
- :mod:`~reconstruction.pipeline`: a take to meshes, the fit report, the output folder;
- :mod:`~reconstruction.cli`: ``mmface4d reconstruct``.

Layers: this package imports the core only (never ``capture_rig``).
"""
