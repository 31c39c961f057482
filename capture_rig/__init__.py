"""The recording side of MMFace4D (docs/rig.md).

- ``mkv`` reads Azure Kinect recordings with PyAV; ``mkv_write`` writes that layout (tests);
- ``registration`` registers depth to the colour camera on the CPU; ``sync`` matches the cameras'
  frames by device timestamps and aligns the audio; ``convert`` makes a take folder
  (``mmface4d rig convert``); ``plan`` makes an actor's session plan;
- ``consent`` keeps consent records and the withdrawal list (standard library only);
- ``recorder/`` runs in the recording environment (numpy < 2, pyk4a, sounddevice): the rig, the
  microphone, the prompter's logic and screen, the session loop, and a pyk4a device double.

Nothing here is imported by ``import capture_rig``: the recorder's environment lacks the main
dependencies, and every ``mmface4d`` call loads ``capture_rig.cli``.
"""
