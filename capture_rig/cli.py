"""``mmface4d rig``: convert Azure Kinect recordings to takes, plan sessions, consent, record.

Only the standard library is imported here (every ``mmface4d`` call loads this module; the
recording environment has no main dependencies). ``record`` runs in the recording environment
(docs/rig.md); the others in the main one.
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    rig = subparsers.add_parser(
        "rig",
        help="the recording side: Azure Kinect recordings to takes, session plans, consent, the recorder",
        description="The capture rig (three Azure Kinect DK cameras and a microphone). `convert` turns the "
        "recordings into a take on the CPU; `simulate` renders synthetic takes as the rig records them; `plan` makes an actor's session plan; `consent` keeps "
        "consent records and the withdrawal list; `record` runs the prompter and the recorder (in "
        "the recording environment, see docs/rig.md).",
    )
    commands = rig.add_subparsers(dest="rig_command", metavar="SUBCOMMAND")
    rig.set_defaults(func=lambda args: (rig.print_help(), 2)[1])

    convert = commands.add_parser(
        "convert",
        help="Azure Kinect recordings (MKV) + WAV -> a take folder",
        description="Convert one take's recordings (one to three MKV files from the Azure Kinect recorder, in "
        "camera order) into OUT/ID/: ID_c.json (calibration), ID_c.nut (depth registered to colour, "
        "FFV1 gray16le mm), ID_c.mp4 (H.264), ID.wav (aligned to video frame 0), ID.meta.json, and "
        "ID_c.landmarks.npy where a landmark file REC.landmarks.npy lies beside REC.mkv (float32 "
        "(captures, 68, 2) pixels, one row per capture; carried onto the take's frames). "
        "With --session, convert every take of a recording session not yet in OUT. Frames are "
        "matched by device timestamps; a frame missing in one camera is reported and written as "
        "no depth / black, never shifted. The take appears only when complete.",
    )
    convert.add_argument("recordings", nargs="*", metavar="REC.mkv", help="recordings of cameras 0, 1, 2 (1 to 3)")
    convert.add_argument("--take", metavar="ID", help="six-digit take id, ASCII digits 0-9 (not with --session)")
    convert.add_argument(
        "--allow-damaged",
        action="store_true",
        help="keep a take in which a camera lacks more than 1%% of the frames (dropped or damaged captures; "
        "written as no depth and a black image, counted in the notes and ID.meta.json); default: such a take fails",
    )
    convert.add_argument("--session", metavar="DIR", help="a recording session folder (takes/ID/ID_c.mkv ...)")
    convert.add_argument("--out", required=True, metavar="DIR", help="folder the take folder(s) go into")
    convert.add_argument("--audio", metavar="WAV", help="the take's speech, 16 kHz mono")
    convert.add_argument(
        "--take-log",
        metavar="JSON",
        help="the recorder's ID.take.json (audio timing, subject, sentence); default: beside the first recording when present",
    )
    convert.add_argument(
        "--camera-ids", metavar="C,C,C", help="camera index of each recording (default 0,1,2 in order; camera 1 is the frontal reference)"
    )
    convert.add_argument("--subject", metavar="ID", help="subject id for ID.meta.json")
    convert.add_argument("--sentence", metavar="ID", help="sentence id for ID.meta.json (its prefix is the emotion)")
    convert.add_argument("--text", help="the sentence's text for ID.meta.json")
    convert.add_argument(
        "--crf", type=int, default=None, metavar="N", help="H.264 constant rate factor of the colour videos, 0..51 (default 18)"
    )
    convert.add_argument("--threads", type=int, default=0, metavar="N", help="decoder/encoder threads (default: FFmpeg's choice)")
    convert.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="cameras converted at once (default: one per camera, at most one per CPU core)",
    )
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    convert.set_defaults(func=_run_convert)

    plan = commands.add_parser(
        "plan",
        help="make an actor's session plan (sentences balanced over the seven emotions)",
        description="Draw N sentences (default 100) from the corpus for one actor, balanced over the seven "
        "emotions, with consecutive six-digit take ids from --first-take; writes the plan JSON "
        "that `mmface4d rig record` prompts from.",
    )
    plan.add_argument("--actor", required=True, help="actor id (the takes' subject_id)")
    plan.add_argument("--first-take", type=int, required=True, metavar="N", help="take id of the first sentence")
    plan.add_argument("--sentences", type=int, default=100, metavar="N", help="sentences in the plan (default 100)")
    plan.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    plan.add_argument("--out", required=True, metavar="PLAN.json", help="file to write")
    plan.set_defaults(func=_run_plan)

    consent = commands.add_parser(
        "consent",
        help="record consent, withdraw an actor, or show an actor's status",
        description="Consent records live in a registry folder: REGISTRY/consent/ACTOR.json and "
        "REGISTRY/withdrawals.json. Recording needs a record; `mmface4d build release "
        "--withdrawals REGISTRY/withdrawals.json` leaves withdrawn actors' takes out.",
    )
    consent.add_argument("action", choices=("add", "withdraw", "show"))
    consent.add_argument("--registry", required=True, metavar="DIR")
    consent.add_argument("--actor", required=True)
    consent.add_argument("--date", help="YYYY-MM-DD (add, withdraw)")
    consent.add_argument(
        "--scope",
        help="comma-separated uses granted (add): research_release, internal_research, audio, face_geometry, colour_video_internal",
    )
    consent.add_argument("--note", default="", help="free text kept with the record")
    consent.set_defaults(func=_run_consent)

    simulate = commands.add_parser(
        "simulate",
        help="synthetic takes as the three Azure Kinects would record them, with the truth",
        description="Render the synthetic talking faces (mmface4d synth) as the rig records them: three Azure "
        "Kinects at 45 degrees left, frontal and 45 degrees right, 0.7 m away, with the sample take's "
        "colour intrinsics and a real recording's lenses; depth rendered in each depth camera with "
        "noise, holes and flying pixels, then registered to colour as `rig convert` does; noisy 68-point "
        "landmarks; clock jitter and an audio offset. Writes DIR/takes/ID/ (ID.wav, ID_c.json, "
        "ID_c.mp4, ID_c.nut, ID_c.landmarks.npy, ID.meta.json), DIR/truth/ID/ (ID_filt_{0,1,2}.nut in "
        "camera 1's frame with detail outside the face model's span, ID.wav, ID.meta.json with the "
        "true extrinsics, noise settings and offsets, ID.gt.npz with the true landmarks; `mmface4d "
        "build release DIR/truth` builds it) and with --mkv DIR/session/takes/ID/ (the recorder's session "
        "layout: ID_c.mkv Azure Kinect-style recordings, ID_c.landmarks.npy, ID.wav, ID.take.json; for "
        "`rig convert --session` and `build from-recordings`). DIR must be new or empty, or an earlier run with the same "
        "settings (then finished takes are kept). Same seed, same bytes. See docs/simulator.md.",
    )
    simulate.add_argument("--subjects", type=int, required=True, metavar="K", help="number of actors (1..999)")
    simulate.add_argument("--sentences", type=int, required=True, metavar="M", help="sentences per actor (1..999)")
    simulate.add_argument("--out", required=True, metavar="DIR", help="output folder (new or empty, or its own)")
    simulate.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    simulate.add_argument(
        "--resolution",
        default="1080p",
        choices=("1080p", "720p", "720p-binned", "small"),
        help="1080p: colour 1920x1080 + depth NFOV unbinned 640x576 (default, the rig's); 720p: "
        "1280x720 + NFOV unbinned; 720p-binned: 1280x720 + NFOV 2x2 binned 320x288; small: "
        "480x270 + 320x288 for tests (no --mkv)",
    )
    simulate.add_argument(
        "--noise",
        default="",
        metavar="SPEC",
        help="noise settings: 'none', or name=value overrides such as depth_sigma_mm=2,"
        "hole_angle_deg=70 (names and defaults: docs/simulator.md)",
    )
    simulate.add_argument(
        "--vertices", type=int, default=None, metavar="N", help="vertex count of the embedded face model (default: its default, 5023)"
    )
    simulate.add_argument(
        "--max-frames", type=int, default=None, metavar="T", help="keep only the first T frames of each take (short takes for tests)"
    )
    simulate.add_argument(
        "--mkv", action="store_true", help="also write the recordings in the recorder's session layout, DIR/session/takes/ID/"
    )
    simulate.add_argument("--workers", type=int, default=1, metavar="N", help="takes simulated in parallel (default 1)")
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    simulate.set_defaults(func=_run_simulate)

    record = commands.add_parser(
        "record",
        help="prompt and record a session (recording environment)",
        description="Run an actor's session: check consent, show each sentence on the terminal, record the "
        "three cameras (one MKV each, subordinates started before the master, 160/320 us "
        "staggered) and the microphone (16 kHz mono float32) per take, and resume where a "
        "stopped session left off. Keys: r record/stop, t retake, s skip, b mark bad, q quit. "
        "Needs the recording environment (./setup-rig.sh; docs/rig.md).",
    )
    record.add_argument("--session", required=True, metavar="DIR", help="session folder (created or resumed)")
    record.add_argument("--plan", required=True, metavar="PLAN.json", help="from `mmface4d rig plan`")
    record.add_argument("--registry", required=True, metavar="DIR", help="consent registry")
    record.add_argument("--serials", metavar="S0,S1,S2", help="serial numbers of cameras 0, 1, 2 (default: by cabling)")
    record.add_argument("--cameras", type=int, default=3, choices=(1, 2, 3), help="number of cameras (default 3)")
    record.add_argument("--microphone", default=None, help="sounddevice input device (default: the system's)")
    record.add_argument(
        "--simulate", action="store_true", help="use simulated devices and microphone (no hardware; writes placeholder recordings)"
    )
    record.set_defaults(func=_run_record)


def _run_convert(args) -> int:
    from pathlib import Path

    from capture_rig.convert import TAKE_LOG_SUFFIX, convert_session, convert_take
    from capture_rig.errors import RigError

    progress = not args.quiet
    if args.session:
        if args.recordings or args.take:
            raise RigError("--session converts a whole session: give no recordings and no --take")
        summary = convert_session(args.session, args.out, crf=args.crf, progress=progress, threads=args.threads, workers=args.workers)
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 1 if summary["failed"] else 0
    if not args.recordings or not args.take:
        raise RigError("give the recordings (1 to 3 MKV files) and --take ID, or --session DIR")
    take_log = args.take_log
    if take_log is None:
        candidate = Path(args.recordings[0]).parent / f"{args.take}{TAKE_LOG_SUFFIX}"
        take_log = candidate if candidate.is_file() else None
    camera_ids = None
    if args.camera_ids:
        try:
            camera_ids = [int(c) for c in args.camera_ids.split(",")]
        except ValueError:
            raise RigError(f"--camera-ids must be numbers like 0,1,2, got {args.camera_ids!r}") from None
    metadata = {"subject_id": args.subject, "sentence_id": args.sentence, "text": args.text}
    report = convert_take(
        args.recordings,
        args.take,
        args.out,
        audio=args.audio,
        take_log=take_log,
        camera_ids=camera_ids,
        metadata=metadata,
        crf=args.crf,
        progress=progress,
        threads=args.threads,
        workers=args.workers,
        allow_damaged=args.allow_damaged,
    )
    print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    return 0


def _run_simulate(args) -> int:
    from capture_rig.errors import RigError
    from capture_rig.simulate import SimulationOptions, simulate
    from capture_rig.simulate_noise import parse_noise

    if args.max_frames is not None and args.max_frames < 1:
        raise RigError(f"--max-frames must be at least 1, got {args.max_frames}")
    options = SimulationOptions(
        resolution=args.resolution, noise=parse_noise(args.noise), mkv=args.mkv, num_vertices=args.vertices, max_frames=args.max_frames
    )
    summary = simulate(
        args.out, args.subjects, args.sentences, seed=args.seed, options=options, workers=args.workers, progress=not args.quiet
    )
    summary.pop("takes")
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _run_plan(args) -> int:
    from capture_rig.plan import write_session_plan

    summary = write_session_plan(args.out, args.actor, first_take=args.first_take, sentences=args.sentences, seed=args.seed)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _run_consent(args) -> int:
    from capture_rig import consent
    from capture_rig.errors import ConsentError

    if args.action == "add":
        if not args.date or not args.scope:
            raise ConsentError("consent add needs --date and --scope")
        record = consent.record_consent(args.registry, args.actor, args.date, args.scope.split(","), args.note)
        print(json.dumps(record.as_dict(), indent=2, sort_keys=True))
    elif args.action == "withdraw":
        if not args.date:
            raise ConsentError("consent withdraw needs --date")
        consent.withdraw(args.registry, args.actor, args.date, args.note)
        print(f"actor {args.actor} is on the withdrawal list of {args.registry}")
    else:
        print(json.dumps(consent.consent_status(args.registry, args.actor), indent=2, sort_keys=True))
    return 0


def _run_record(args) -> int:
    from capture_rig.errors import RigError
    from capture_rig.recorder.session import open_session, run_session

    session = open_session(args.session, args.plan, args.registry)
    if args.simulate:
        from capture_rig.recorder.audio import SimulatedMicrophone
        from capture_rig.recorder.double import SimulatedK4A, daisy_chain

        k4a, microphone = SimulatedK4A(daisy_chain(args.cameras), pace=True), SimulatedMicrophone()
    else:
        try:
            import pyk4a as k4a
        except ImportError as exc:
            raise RigError(
                f"pyk4a cannot be imported ({exc}); `mmface4d rig record` runs in the recording "
                "environment: ./setup-rig.sh, then .venv-rig/bin/mmface4d rig record ... (docs/rig.md)"
            ) from None
        from capture_rig.recorder.audio import Microphone

        microphone = Microphone(args.microphone)
    from capture_rig.recorder.rig import Rig

    rig = Rig.open(k4a, microphone, cameras=args.cameras, serials=args.serials.split(",") if args.serials else None)
    import curses

    from capture_rig.recorder.screen import CursesScreen

    def main(stdscr):
        screen = CursesScreen(stdscr)
        return run_session(session, rig, args.session, screen.key, screen.draw)

    counts = curses.wrapper(main)
    print(json.dumps(counts, indent=2, sort_keys=True))
    return 0
