"""`emotf-predict`: emotions over time in raw video files, with an exported SavedModel.

    emotf-predict --model DIR INPUT [INPUT ...] [--audio WAV ...] [--window S] [--hop S]
                  [--out DIR] [--json] [--batch-size 8] [--no-progress] [--trust-model]

INPUT: video files, folders (searched recursively for video extensions) or glob patterns
(symbolic link loops are entered once; a file reached twice is predicted once).
Each video is decoded as a stream, its face (the largest, followed over time) cropped with the
build's tracker, its audio taken from the WAV given for it (`--audio` once per video, in the
same order) or from its own track, and scored over sliding windows (default: the model's
window, the median training clip, and a 1 s hop); the video's label is the mean of the
windows'. `--out DIR` writes DIR/<stem>.json, .timeline.csv and .timeline.png per video (a long
or repeated name is shortened with a hash) and says on stderr where each video's files went.
A file that fails is reported and the others go on; the exit status is 1 if any failed.
The model's graph is checked before it is loaded: a SavedModel with file, network or Python
ops is refused (emotf.graph_ops; SECURITY.md); `--trust-model` skips the check.
"""

from __future__ import annotations

import dataclasses
import sys

from emotf.bounds import describe
from emotf.cli import Parser, command


@command("emotf-predict")
def main(argv=None) -> int:
    from emotf.predict import PredictConfig

    bounds = {f.name: describe(f) for f in dataclasses.fields(PredictConfig)}
    parser = Parser(prog="emotf-predict", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="video files, folders (recursive) or glob patterns")
    parser.add_argument("--model", required=True,
                        help="SavedModel folder (base or version; local or gs://...)")
    parser.add_argument("--audio", action="append", default=None, metavar="WAV",
                        help="audio file for the video in the same position (repeat per video)")
    parser.add_argument("--window", type=float, default=None, metavar="S",
                        help="window length in seconds (default: the model's, the median "
                             f"training clip; {bounds['window_s']})")
    parser.add_argument("--hop", type=float, default=None, metavar="S",
                        help="seconds between window starts (default: the model's, 1 s; "
                             f"{bounds['hop_s']})")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write <stem>.json, <stem>.timeline.csv, <stem>.timeline.png here "
                             "(local or gs://...)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (a list, one object per video)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help=f"windows per model call ({bounds['batch_size']})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--trust-model", action="store_true",
                        help="load the SavedModel without checking its graph's ops: a SavedModel "
                             "is a program, so only for a model you trust (SECURITY.md)")
    args = parser.parse_args(argv)
    try:  # the bounds, declared once on PredictConfig: refused before anything is read
        config = PredictConfig(window_s=args.window, hop_s=args.hop, batch_size=args.batch_size)
    except ValueError as error:
        parser.error(str(error))

    from emotf.predict import expand_inputs, predict_files
    from emotf.timeline import format_table, to_json

    videos, problems = expand_inputs(args.inputs)
    for problem in problems:
        print(f"emotf-predict: {problem}", file=sys.stderr)
    if not videos:
        print("emotf-predict: error: no video to predict", file=sys.stderr)
        return 1
    if args.audio is not None and len(args.audio) != len(videos):
        parser.error(f"give --audio once per video: {len(videos)} videos, {len(args.audio)} --audio")
    try:
        results = predict_files(args.model, videos, args.audio, batch_size=config.batch_size,
                                window=config.window_s, hop=config.hop_s, out_dir=args.out,
                                progress=not args.no_progress, trust_model=args.trust_model)
    except (FileNotFoundError, ValueError) as error:
        print(f"emotf-predict: error: {error}", file=sys.stderr)
        return 2
    print(to_json(results) if args.json else format_table(results))
    for result in results:
        if result.get("outputs"):
            print(f"emotf-predict: {result['file']} -> {', '.join(result['outputs'].values())}",
                  file=sys.stderr)
    failed = [r for r in results if "error" in r]
    if args.out is not None:
        written = sum(len(r.get("outputs") or {}) for r in results)
        print(f"emotf-predict: wrote {written} files for {len(results)} videos to {args.out}",
              file=sys.stderr)
    if failed or problems:
        print(f"emotf-predict: {len(failed)} of {len(results)} files failed"
              + (f", {len(problems)} inputs matched nothing" if problems else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
