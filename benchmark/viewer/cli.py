"""`mmface4d view`: browse a release in the browser (a read-only local server), or export the viewer as a static folder.

Imports only the standard library at module level (every `mmface4d` call loads it)."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Serve a single-page 4D face viewer of RELEASE on a read-only local web server (bound to 127.0.0.1 unless "
    "--host says otherwise) and open it in the browser: a list of takes (filter by split, subject, emotion, gender; "
    "search the sentence), a player whose mesh frame follows the audio clock (frame = floor(time x fps)), orbit, "
    "zoom and reset, and with --prediction the modes prediction, side by side and error heatmap (per-vertex "
    "distance in mm, colour bar, the take's four metrics). With --export DIR the same viewer is written as a "
    "static folder (relative URLs only) that any static host serves. RELEASE: a release folder, `mini` (the small "
    "synthetic release, built offline on first use), a release in the cache, or a Hub dataset owner/name (with --ids, "
    "only the shards holding them are downloaded). The page loads "
    "nothing from outside (three.js ships in the package). Keys: space play/pause, comma and period step a "
    "frame, r reset the view."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "view", help="browse a release (and a submission) in a 4D face viewer with audio", description=DESCRIPTION
    )
    from mmface4d_datasets.arguments import RELEASE_HELP

    parser.add_argument("release", metavar="RELEASE", help=RELEASE_HELP)
    parser.add_argument(
        "--prediction", metavar="SUBMISSION", help="a submission .parquet to show beside the truth (checked against RELEASE first)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other address warns)")
    parser.add_argument("--port", type=_port, default=None, help="port (default 8753, or a free one when it is taken; 0: a free one)")
    parser.add_argument("--no-open", action="store_true", help="print the URL, do not open a browser")
    parser.add_argument("--export", metavar="DIR", help="write the viewer as a static folder instead of serving it")
    parser.add_argument("--ids", nargs="+", metavar="ID", help="only these takes (ids as subject/take; default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (--export)")
    parser.set_defaults(func=_run)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a whole number 0..65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    import json

    from benchmark.viewer.content import ViewerContent, resolve_release
    from benchmark.viewer.frames import EXPORT_LEVEL, SERVER_LEVEL

    folder = resolve_release(args.release, args.ids)
    level = EXPORT_LEVEL if args.export else SERVER_LEVEL
    content = ViewerContent(folder, name=args.release, prediction=args.prediction, ids=args.ids, level=level)
    if args.export:
        from benchmark.viewer.export import export_viewer

        summary = export_viewer(content, args.export, progress=not args.quiet)
        print(json.dumps(summary))
        return 0
    return _serve(content, args)


def _serve(content, args: argparse.Namespace) -> int:
    import errno
    import sys
    import webbrowser

    from benchmark.viewer.server import DEFAULT_PORT, make_server, server_url
    from mmface4d_datasets.errors import MMFace4DError

    try:
        server = make_server(content, args.host, DEFAULT_PORT if args.port is None else args.port)
    except OSError as exc:
        if args.port is None and exc.errno == errno.EADDRINUSE:
            server = make_server(content, args.host, 0)
        else:
            raise MMFace4DError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    url = server_url(server)
    print(f"mmface4d view: serving {len(content.keys)} takes of {content.name} at {url} (Ctrl+C stops)", flush=True)
    if not args.no_open:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
