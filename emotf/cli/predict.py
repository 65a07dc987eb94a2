"""`emotf-predict`: emotion of raw video files with an exported SavedModel.

    emotf-predict --model DIR VIDEO [VIDEO ...] [--audio WAV ...] [--json]

Decodes each video, crops the face (the build's face tracker), takes the audio from the WAV
given for it (`--audio` once per video, in the same order) or from the video's own track,
resamples it to 16 kHz, and prints the label with a probability table (or JSON with `--json`).
A file that fails is reported and the others go on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import sys

from emotf.cli import Parser, command


@command("emotf-predict")
def main(argv=None) -> int:
    parser = Parser(prog="emotf-predict", description=__doc__.split("\n")[0])
    parser.add_argument("videos", nargs="+", metavar="VIDEO")
    parser.add_argument("--model", required=True, help="SavedModel folder (base or version)")
    parser.add_argument("--audio", action="append", default=None, metavar="WAV",
                        help="audio file for the video in the same position (repeat per video)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per model call")
    args = parser.parse_args(argv)
    if args.audio is not None and len(args.audio) != len(args.videos):
        parser.error(f"give --audio once per video: {len(args.videos)} videos, {len(args.audio)} --audio")

    from emotf.predict import format_table, predict_files, to_json

    try:
        results = predict_files(args.model, args.videos, args.audio, batch_size=args.batch_size)
    except (FileNotFoundError, ValueError) as error:
        print(f"emotf-predict: error: {error}", file=sys.stderr)
        return 2
    print(to_json(results) if args.json else format_table(results))
    failed = [r for r in results if "error" in r]
    if failed:
        print(f"emotf-predict: {len(failed)} of {len(results)} files failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
