"""Each clip's media files against CREMA-D's official checksums; the dataset's known bad clips.

`emotf/data/checksums.csv` (22,326 rows `path,size,sha256`, read from the Git LFS pointers of
the public CREMA-D repository, commit 1658cd3) lists every official FLV, WAV and MP3. A file is

    verified   an official name (VideoFlash/<clip>.flv, AudioWAV/<clip>.wav) with the
               official size and SHA-256: byte-identical to the dataset's file
    differs    an official name, other bytes (a re-encoded or resampled copy, a truncated
               download, a Git LFS pointer): usable, kept, flagged
    unknown    not an official file name (e.g. a synthetic clip of a name CREMA-D lacks)
    missing    no such file (e.g. the clip's WAV is absent)

Hashing reads every byte once (~1 GB/s on one core here); the size is compared first, so a
copy of another size is never hashed.
"""

from __future__ import annotations

import csv
import functools
import hashlib
from collections import Counter
from pathlib import Path

from emotf.corpora.cremad import data_path

VERIFIED, DIFFERS, UNKNOWN, MISSING = "verified", "differs", "unknown", "missing"
STATUSES = (VERIFIED, DIFFERS, UNKNOWN, MISSING)

# The dataset's own list of problem clips (its README; sizes from checksums.csv) and what the
# build does with each. "skip": skipped before decoding, with the reason. "note": decoded under
# the ordinary rules (docs/build_records.md), with the fact added as a note.
KNOWN_BAD: dict[str, tuple[str, str]] = {
    "1064_IEO_DIS_MD": (
        "skip",
        "known bad clip (CREMA-D README): the FLV (8.5 MB) is one minute "
        "holding every emotional display of the sentence under one label",
    ),
    "1076_MTI_SAD_XX": (
        "skip",
        "known bad clip (CREMA-D README): FLV and WAV show an error "
        "picture, have no audio and are very short",
    ),
    "1076_MTI_NEU_XX": (
        "note",
        "known problem clip (CREMA-D README): the FLV is near-empty "
        "(35 kB) and has no audio track; audio comes from its WAV, "
        "which is fine",
    ),
    "1064_TIE_SAD_XX": (
        "note",
        "known problem clip (CREMA-D README): the FLV declares no "
        "duration; decoded frame by frame under the frame cap",
    ),
}


@functools.lru_cache(maxsize=2)
def official_checksums(path: str | None = None) -> dict[str, tuple[int, str]]:
    """{"VideoFlash/1001_DFA_ANG_XX.flv": (size, sha256), ...} from checksums.csv."""
    table = {}
    with open(path or data_path("checksums.csv"), newline="") as f:
        for row in csv.DictReader(f):
            table[row["path"]] = (int(row["size"]), row["sha256"].lower())
    return table


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_file(path: str | Path, official_name: str, table: dict | None = None) -> str:
    """Status (`STATUSES`) of one file against the official entry `official_name`
    ("VideoFlash/<clip>.flv")."""
    table = official_checksums() if table is None else table
    path = Path(path)
    if not path.is_file():
        return MISSING
    entry = table.get(official_name)
    if entry is None:
        return UNKNOWN
    size, digest = entry
    if path.stat().st_size != size:
        return DIFFERS
    return VERIFIED if file_sha256(path) == digest else DIFFERS


def check_clip(clip_id: str, video: str | Path, audio: str | Path) -> dict[str, str]:
    """{"video": status, "audio": status} of a clip's FLV and WAV."""
    return {
        "video": check_file(video, f"VideoFlash/{clip_id}.flv"),
        "audio": check_file(audio, f"AudioWAV/{clip_id}.wav"),
    }


def summarize(media_checks: dict[str, dict[str, str]]) -> dict[str, dict[str, int]]:
    """{"video": {status: count}, "audio": {...}} over the clips (every status present)."""
    out = {}
    for kind in ("video", "audio"):
        counts = Counter(check[kind] for check in media_checks.values())
        out[kind] = {status: counts.get(status, 0) for status in STATUSES}
    return out


def summary_line(summary: dict[str, dict[str, int]]) -> str:
    """One console line, e.g. "media checks against the official CREMA-D checksums: video 7442
    verified, 0 differ, 0 unknown, 0 missing; audio ..."."""
    parts = []
    for kind in ("video", "audio"):
        c = summary[kind]
        parts.append(
            f"{kind} {c[VERIFIED]} verified, {c[DIFFERS]} differ, {c[UNKNOWN]} "
            f"unknown, {c[MISSING]} missing"
        )
    return "media checks against the official CREMA-D checksums: " + "; ".join(parts)
