"""The recording side of MMFace4D (planned; no capability has landed here yet).

What will live here (DESIGN.md, The house): the take layout on disk, the Azure Kinect recorder
through pyk4a (the optional ``rig`` extra), microphone capture, the sentence prompter, MKV-to-take
conversion and the rig simulator. Until then, takes are read and written by
``mmface4d_datasets.official`` and synthetic takes come from ``mmface4d_datasets.synthetic``.
"""
