"""A prediction as JSON (`timeline_entry`, `document`) and the files `emotf-predict --out DIR`
writes per video (`write_outputs`): `<stem>.json`, `<stem>.timeline.csv`, `<stem>.timeline.png`,
under names that fit any filesystem and never collide (`output_stems`).
"""

from __future__ import annotations

import csv
import hashlib
import io

from emotf.serving.timeline_plot import plot_timeline
from emotf.storage import as_path, write_atomic, write_json

# Output stems under `--out` are at most this many UTF-8 bytes (a file name is at most 255).
MAX_STEM_BYTES = 120

# The columns of `<stem>.timeline.csv` besides one probability column per class.
CSV_COLUMNS = ("start", "end", "face_id", "label", "skipped")

__all__ = [
    "CSV_COLUMNS",
    "MAX_STEM_BYTES",
    "document",
    "output_stems",
    "probability_columns",
    "timeline_entry",
    "write_outputs",
]


def timeline_entry(w: dict, class_codes: list[str]) -> dict:
    """One window (of one face) of a result's `timeline`: {"start", "end", "face_id" (0 when
    following the largest face; null on a window without any face when tracking every face),
    "label" (code), "probabilities" {code: p} (6 decimals)}, or label and probabilities null
    with the `skipped` reason."""
    entry = {"start": w["start"], "end": w["end"], "face_id": w.get("face_id", 0)}
    if w["probabilities"] is None:
        return {**entry, "probabilities": None, "label": None, "skipped": w["skipped"]}
    return {
        **entry,
        "label": class_codes[w["label"]],
        "probabilities": {
            c: round(float(p), 6) for c, p in zip(class_codes, w["probabilities"], strict=True)
        },
    }


def output_stems(files) -> list[str]:
    """The stem of each file's outputs under `--out`, in order: the file's own stem when it is
    short and not taken yet, else its first `MAX_STEM_BYTES` - 9 bytes (UTF-8, whole
    characters) and `-` + 8 hex digits of a hash of the whole path, so that every name fits a
    filesystem (255 bytes with `.timeline.png`) and two videos never write over each other
    (`a/clip.mp4` and `b/clip.mp4`; compared case-blind, for case-blind filesystems)."""
    stems, taken = [], set()
    for file in map(str, files):
        stem = as_path(file).stem or "video"
        n = 0
        while len(stem.encode("utf-8")) > MAX_STEM_BYTES or stem.casefold() in taken:
            digest = hashlib.sha1(f"{file}#{n}".encode() if n else file.encode()).hexdigest()[:8]
            head = as_path(file).stem.encode("utf-8")[: MAX_STEM_BYTES - 9]
            stem = f"{head.decode('utf-8', 'ignore')}-{digest}"
            n += 1
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def probability_columns(class_codes: list[str]) -> list[str]:
    """The CSV column of each class's probability: its code (CREMA-D: `ANG`, ...), or `p_` +
    the code where the code is one of the other columns' names (a class called `label`)."""
    columns: list[str] = []
    for code in class_codes:
        column = code
        while column in CSV_COLUMNS or (column != code and column in class_codes):
            column = f"p_{column}"
        columns.append(column)
    return columns


def write_outputs(result: dict, out_dir, class_codes: list[str], stem: str | None = None) -> dict:
    """`out_dir/<stem>.json`, `<stem>.timeline.csv` (one row per window and face, with a
    `face_id` column and a probability column per class: `probability_columns`) and
    `<stem>.timeline.png` (one panel per face) for one video's result
    (`emotf.serving.predict.predict_files`); a failed video gets its JSON (with `error`) only.
    `stem`: default `output_stems([result["file"]])[0]` (a long name is shortened).
    Returns {"json": path, "csv": path, "png": path} of what was written. `out_dir` may be
    local or a `tf.io.gfile` URL (`gs://...`; `emotf.storage`); each file is written whole."""
    out_dir = as_path(out_dir)
    out_dir.mkdir()
    stem = stem or output_stems([result["file"]])[0]
    paths = {"json": out_dir / f"{stem}.json"}
    write_json(paths["json"], document(result))
    timeline = result.get("timeline") or []
    if timeline:
        paths["csv"] = out_dir / f"{stem}.timeline.csv"
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        start, end, face, label, skipped = CSV_COLUMNS
        writer.writerow([start, end, face, label, *probability_columns(class_codes), skipped])
        for w in timeline:
            probs = w["probabilities"] or {}
            face_id = w.get("face_id", 0)
            writer.writerow(
                [
                    w["start"],
                    w["end"],
                    "" if face_id is None else face_id,
                    w["label"] or "",
                    *[f"{probs[c]:.6f}" if c in probs else "" for c in class_codes],
                    w.get("skipped") or "",
                ]
            )
        write_atomic(paths["csv"], text.getvalue().encode("utf-8"))
        paths["png"] = out_dir / f"{stem}.timeline.png"
        plot_timeline(result, class_codes, paths["png"])
    return {k: str(v) for k, v in paths.items()}


def document(result: dict) -> dict:
    """A result as written to files and `--json`: always the keys `file`, `timeline`, `label`,
    `probabilities`, `notes`, `error` (null on success; on failure the others are empty)."""
    base = {
        "file": result["file"],
        "timeline": [],
        "label": None,
        "probabilities": None,
        "notes": [],
        "error": None,
    }
    return {**base, **result}
