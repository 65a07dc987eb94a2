"""`emotf-predict`: emotions over time in raw video files, with an exported SavedModel.

    emotf-predict --model DIR INPUT [INPUT ...] [--audio WAV ...] [--window S] [--hop S]
                  [--out DIR] [--json] [--batch-size 8] [--faces largest|all] [--threads N]
                  [--no-progress] [--trust-model]
    emotf-predict --model DIR --live SOURCE [--window S] [--hop S] [--faces largest|all]
                  [--threads N] [--live-timeout 10] [--live-format FMT] [--live-audio DEVICE]

INPUT: video files, folders (searched recursively for video extensions) or glob patterns
(symbolic link loops are entered once; a file reached twice is predicted once).
Each video is decoded as a stream, its face (the largest, followed over time) cropped with the
build's tracker, its audio taken from the WAV given for it (`--audio` once per video, in the
same order) or from its own track, and scored over sliding windows (default: the model's
window, the median training clip, and a 1 s hop); the video's label is the mean of the
windows'. `--out DIR` writes DIR/<stem>.json, .timeline.csv and .timeline.png per video (a long
or repeated name is shortened with a hash) and says on standard output where each video's files
went. A file that fails is reported in the table (or JSON) and the others go on; standard error
then gets one line naming the failures (`emotf-predict: error: 1 of 3 videos failed: a.mp4:
...`) and the exit status is 1.
The model's graph is checked before it is loaded: a SavedModel with file, network or Python
ops is refused (emotf.serving.graph_ops; SECURITY.md); `--trust-model` skips the check.

`--live SOURCE` (instead of INPUT): `-` (a container stream on standard input, e.g. MPEG-TS from
ffmpeg), a capture device /dev/videoN (read with the microphone `--live-audio`, an ALSA device,
through the system ffmpeg: emotf.media.capture) or a stream URL (rtsp://, http://, udp://,
...), video and audio from one pass; one JSON line per window on stdout as soon as it closes
({"start", "end", "face_id", "probabilities", "label"}, or "skipped": the reason), a one-line
summary on stderr at the end of the stream (exit 0); Ctrl-C / SIGTERM stop it (exit 130 /
143); no data for `--live-timeout` seconds, or a source that cannot be read, is one line and
exit status 1 (emotf.serving.live; docs/live.md).
"""

from __future__ import annotations

import dataclasses
import os
import sys

from emotf.bounds import describe
from emotf.cli import Parser, command
from emotf.media.faces import NoFaceError
from emotf.media.files import MediaError
from emotf.media.live_source import LiveSource
from emotf.media.preprocess import ClipError
from emotf.serving.console import format_table, to_json
from emotf.serving.inputs import expand_inputs
from emotf.serving.live import LiveRun, predict_live


@command("emotf-predict")
def main(argv=None) -> int:
    # emotf.serving.predict imports TensorFlow: here, once emotf.quiet has silenced it.
    from emotf.serving.predict import FACE_MODES, PredictConfig

    bounds = {f.name: describe(f) for f in dataclasses.fields(PredictConfig)}
    parser = Parser(prog="emotf-predict", description=__doc__.split("\n")[0])
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="video files, folders (recursive) or glob patterns",
    )
    parser.add_argument(
        "--live",
        default=None,
        metavar="SOURCE",
        help="read a live stream instead of files: '-' (a container stream, e.g. "
        "MPEG-TS, on standard input), /dev/videoN, or a URL (rtsp://, "
        "http://, udp://, ...); one JSON line per window as it closes",
    )
    parser.add_argument(
        "--live-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="with --live: end with an error after S seconds without data (default 10)",
    )
    parser.add_argument(
        "--live-format",
        default=None,
        metavar="FMT",
        help="with --live: the container format (mpegts, matroska, flv, ...; default: probed)",
    )
    parser.add_argument(
        "--live-audio",
        default=None,
        metavar="DEVICE",
        help="with --live /dev/videoN: the microphone, an ALSA capture device (default: "
        "'default'; hw:1,0, plughw:CARD=..., ...); the model needs the speech, so 'none' "
        "is refused",
    )
    parser.add_argument(
        "--faces",
        choices=FACE_MODES,
        default="largest",
        help="follow the largest face (default), or track every face, each with "
        "its own timeline (face_id in every entry)",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="SavedModel folder (base or version; local or gs://...) or a .tflite file",
    )
    parser.add_argument(
        "--audio",
        action="append",
        default=None,
        metavar="WAV",
        help="audio file for the video in the same position (repeat per video)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        metavar="S",
        help="window length in seconds (default: the model's, the median "
        f"training clip; {bounds['window_s']})",
    )
    parser.add_argument(
        "--hop",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds between window starts (default: the model's, 1 s; {bounds['hop_s']})",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write <stem>.json, <stem>.timeline.csv, <stem>.timeline.png here (local or gs://...)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document (a list, one object per video)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help=f"windows per model call ({bounds['batch_size']}; --live scores "
        "each window as it closes)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="interpreter threads of a .tflite model (default: LiteRT's; a "
        "SavedModel uses TensorFlow's process-wide threads)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--trust-model",
        action="store_true",
        help="load the SavedModel without checking its graph's ops: a SavedModel "
        "is a program, so only for a model you trust (SECURITY.md)",
    )
    args = parser.parse_args(argv)
    try:  # the bounds, declared once on PredictConfig: refused before anything is read
        config = PredictConfig(
            window_s=args.window, hop_s=args.hop, batch_size=args.batch_size, faces=args.faces
        )
    except ValueError as error:
        parser.error(str(error))
    if args.threads is not None and not 1 <= args.threads <= 256:
        parser.error(f"--threads must be 1 to 256. Received: {args.threads}")
    if args.live is not None:
        if args.inputs or args.audio or args.out or args.json:
            parser.error("--live reads one stream: give no INPUT, --audio, --out or --json with it")
        return _live(parser, args, config)
    if args.live_audio is not None:
        parser.error("--live-audio is for --live /dev/videoN")
    if not args.inputs:
        parser.error("give INPUT files (or --live SOURCE)")

    from emotf.serving.predict import Predictor, predict_files  # TensorFlow: after parsing

    videos, problems = expand_inputs(args.inputs)
    if not videos:  # one line: the input's own problem (each matched nothing)
        more = (
            f" (and {len(problems) - 1} more inputs matched nothing)" if len(problems) > 1 else ""
        )
        print(
            f"emotf-predict: error: no video to predict: {problems[0]}{more}"
            if problems
            else "emotf-predict: error: no video to predict",
            file=sys.stderr,
        )
        return 1
    if args.audio is not None and len(args.audio) != len(videos):
        parser.error(
            f"give --audio once per video: {len(videos)} videos, {len(args.audio)} --audio"
        )
    try:
        predictor = Predictor(args.model, trust_model=args.trust_model, num_threads=args.threads)
        results = predict_files(
            None,
            videos,
            args.audio,
            predictor=predictor,
            batch_size=config.batch_size,
            window=config.window_s,
            hop=config.hop_s,
            out_dir=args.out,
            progress=not args.no_progress,
            faces=config.faces,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"emotf-predict: error: {_one_line(error)}", file=sys.stderr)
        return 2
    # Results and where the files went: standard output. Standard error: one line at the end
    # naming what failed (the rest of each failure is in the table / JSON).
    print(to_json(results) if args.json else format_table(results))
    if args.out is not None and not args.json:  # (the JSON has each video's "outputs")
        for result in results:
            if result.get("outputs"):
                print(f"{result['file']} -> {', '.join(result['outputs'].values())}")
        written = sum(len(r.get("outputs") or {}) for r in results)
        print(f"wrote {written} files for {len(results)} videos to {args.out}")
    sys.stdout.flush()
    line, unnamed = failure_line(results, problems, "the JSON" if args.json else "the table")
    for problem in unnamed:  # inputs that matched nothing, not named by the error line
        print(f"emotf-predict: warning: {problem}", file=sys.stderr)
    if line:
        print(f"emotf-predict: error: {line}", file=sys.stderr)
        return 1
    return 0


def _one_line(error) -> str:
    """The first non-empty line of an error's text (its type's name when it has none)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def failure_line(results: list[dict], problems=(), where: str = "the table"):
    """(one line naming what failed, or None when nothing did; the inputs that matched nothing
    that line does not name, for `warning:` lines). The line: the failed videos' count and the
    first one's problem, e.g. `1 of 3 videos failed: a.mp4: cannot open as video (...)`, with
    `and K more; see the table` for several; then the inputs that matched nothing, counted
    (named too when no video failed)."""
    failed = [r for r in results if "error" in r]
    problems = list(problems)
    parts, unnamed = [], problems
    if failed:
        text = f"{len(failed)} of {len(results)} videos failed: {_one_line(failed[0]['error'])}"
        if len(failed) > 1:
            text += f" and {len(failed) - 1} more; see {where}"
        parts.append(text)
    if problems:
        n = len(problems)
        text = f"{n} input{'s' if n > 1 else ''} matched nothing"
        if not failed:
            text += f": {_one_line(problems[0])}" + (f" and {n - 1} more" if n > 1 else "")
            unnamed = problems[1:]
        parts.append(text)
    return ("; ".join(parts) or None), unnamed


def _live(parser, args, config) -> int:
    """`--live SOURCE`: JSON lines on stdout, the summary on stderr (emotf.serving.live)."""
    from emotf.serving.predict import Predictor  # TensorFlow: after parsing

    microphone = {} if args.live_audio is None else {"microphone": args.live_audio}
    try:
        source = LiveSource(
            args.live, timeout_s=args.live_timeout, format=args.live_format, **microphone
        )
    except ValueError as error:
        parser.error(str(error))
    try:  # a capture device that cannot be read, no ffmpeg: before the model is loaded
        source.check()
    except MediaError as error:
        print(f"emotf-predict: error: {error}", file=sys.stderr)
        return 1
    # The model is loaded before the source is opened: a pipe's writer waits meanwhile, and a
    # capture device's ffmpeg starts once the model is ready.
    predictor = Predictor(args.model, trust_model=args.trust_model, num_threads=args.threads)
    predictor.resolve(config.window_s, config.hop_s, faces=config.faces)
    run = LiveRun(source.label)
    try:
        predict_live(
            predictor, source, window=config.window_s, hop=config.hop_s, faces=config.faces, run=run
        )
    except (MediaError, NoFaceError, ClipError) as error:
        run.ended = "stopped by an error"
        print(f"emotf-predict: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of the lines went away (`| head -3`): a clean stop
        run.ended = "standard output closed"
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except KeyboardInterrupt:
        run.ended = "interrupted"
        raise
    finally:
        print(f"emotf-predict: {run.summary()}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
