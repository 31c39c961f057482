"""Takes to fitted mesh sequences (planned; no capability has landed here yet).

What will live here (DESIGN.md, The house): calibration, landmarks, the three fitting stages,
sequence tracking, temporal smoothing and the executor that runs many takes (a local process pool
by default, Ray for a cluster).
"""
