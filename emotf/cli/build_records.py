"""`emotf-build-records`: CREMA-D folder -> versioned TFRecord shards + manifest.json.

    emotf-build-records --data-dir CREMA-D --out records/ [--workers 2] [--strict]

Rerun the same command after an interruption to finish the remaining shards. Exit status 1 when
no clip was written, or (with --strict) when any clip was skipped. See docs/build_records.md.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from emotf.cli import Parser, command
from emotf.system import available_cpus


def parse_args(argv=None) -> argparse.Namespace:
    from emotf.records.faces import FaceTrackerConfig

    tracker = FaceTrackerConfig()
    p = Parser(prog="emotf-build-records", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="folder with VideoFlash/ and AudioWAV/")
    p.add_argument("--out", required=True, help="output folder (reruns resume in it)")
    p.add_argument("--workers", type=int, default=available_cpus(),
                   help="clip-processing processes (default: the CPUs this process may use)")
    p.add_argument("--clips-per-shard", type=int, default=64)
    p.add_argument("--strict", action="store_true", help="exit 1 when any clip was skipped")
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--stratify-by-sex", action="store_true")
    p.add_argument("--limit", type=int, default=None, help="only the first N clips by name")
    p.add_argument("--min-duration", type=float, default=0.5,
                   help="skip clips shorter than this many seconds (default 0.5)")
    p.add_argument("--max-duration", type=float, default=10.0,
                   help="skip clips longer than this many seconds (default 10)")
    p.add_argument("--keyframe-interval", type=int, default=tracker.keyframe_interval)
    p.add_argument("--detect-scale", type=float, default=tracker.detect_scale)
    p.add_argument("--margin", type=float, default=tracker.margin)
    p.add_argument("--smoothing", type=float, default=tracker.smoothing)
    p.add_argument("--min-confidence", type=float, default=tracker.min_confidence)
    p.add_argument("--stages", default=tracker.stages,
                   choices=["face_and_landmarks_detection", "face_detection_only"])
    p.add_argument("--jpeg-quality", type=int, default=tracker.jpeg_quality)
    p.add_argument("--overwrite", action="store_true",
                   help="delete the folder's shards and manifest first (rebuild with other "
                        "settings); without it such a rerun is refused")
    p.add_argument("--no-verify-media", action="store_true",
                   help="skip checking each clip's FLV/WAV against the official CREMA-D "
                        "checksums (costs ~0.1%% of build time)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


@command("emotf-build-records")
def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    from emotf.records.build import BuildConfig, build_records
    from emotf.records.faces import FaceTrackerConfig

    config = BuildConfig(
        data_dir=args.data_dir, out_dir=args.out, workers=args.workers,
        clips_per_shard=args.clips_per_shard, strict=args.strict, fold_seed=args.fold_seed,
        stratify_by_sex=args.stratify_by_sex, limit=args.limit,
        min_duration_s=args.min_duration, max_duration_s=args.max_duration,
        progress=not args.no_progress, overwrite=args.overwrite,
        verify_media=not args.no_verify_media,
        tracker=FaceTrackerConfig(
            keyframe_interval=args.keyframe_interval, detect_scale=args.detect_scale,
            margin=args.margin, smoothing=args.smoothing, min_confidence=args.min_confidence,
            stages=args.stages, jpeg_quality=args.jpeg_quality,
        ),
    )
    import signal

    # SIGTERM: unwind like Ctrl-C (the worker pool is stopped, the lock released).
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        manifest = build_records(config)
    except FileExistsError as error:
        print(f"emotf-build-records: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        where = error.filename or args.out
        print(f"emotf-build-records: error: {where}: no space left on device; the finished "
              "shards are kept: free some space and rerun the same command to resume",
              file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    if manifest.get("media_summary"):
        from emotf.records.media_checks import summary_line

        print(summary_line(manifest["media_summary"]))
    det = manifest["detector"]
    print(
        f"emotf-build-records: {manifest['clips_written']} clips ({manifest['frames_written']} "
        f"frames) written in {len(manifest['shards'])} shards, {manifest['clips_skipped']} "
        f"skipped; detector ran on {det['detection_rate']:.1%} of frames; "
        f"manifest: {os.path.join(args.out, 'manifest.json')}"
    )
    if manifest["clips_written"] == 0:
        print("ERROR nothing usable was written", file=sys.stderr)
        return 1
    if args.strict and manifest["clips_skipped"]:
        print(f"ERROR --strict: {manifest['clips_skipped']} clips skipped", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
