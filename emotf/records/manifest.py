"""A records folder's manifest: settings fingerprint, shard checksums, completeness checks.

`emotf-build-records` writes `OUT/manifest.json` last, after every shard and its sidecar. The
manifest (layout version `MANIFEST_VERSION`) lists every shard with its clip count, byte size
and SHA-256, and the settings that change record content with their hash. Everything that
reads records for a run (`emotf-train`, `-evaluate`, `-tune`) and `emotf-verify-records` check
a folder against it here before reading a single record:

    manifest.json missing            the build did not finish (or the folder is not a build)
    a listed shard missing           deleted, or the build was interrupted
    a shard on disk, not listed      left over from another build
    size / SHA-256 / record count    truncated or corrupted (bit flip) since it was written
    sidecar of another schema        written by another version of emotf
    build.lock of a live process     a build is writing the folder right now

Problems name the file. Every file is read through `emotf.storage` (`tf.io.gfile`), so the
folder may be local, `gs://...` or `ram://...`.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
from dataclasses import dataclass

from emotf import keys
from emotf.corpora.info import CorpusInfo, CorpusInfoError
from emotf.records.folder import RecordsFolder
from emotf.records.lock import live_owner
from emotf.storage import as_path, read_json, write_json

# Layout of the manifest itself (not of the records): 2 added settings, shard checksums and
# media checks (docs/build_records.md).
MANIFEST_VERSION = 2
_CHUNK_BYTES = 1 << 20
FINISH_HINT = (
    "finish it by rerunning emotf-build-records with the same arguments (it rebuilds "
    "only the missing or bad shards)"
)


class RecordsError(ValueError):
    """A records folder that is incomplete or damaged; the message names every problem."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a records folder: the file and what is wrong with it."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


# --------------------------------------------------------------------------------------------
# Settings fingerprint


def settings_hash(settings: dict) -> str:
    """SHA-256 of the settings as canonical JSON (sorted keys): equal settings, equal hash."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def settings_changes(old: dict, new: dict) -> list[str]:
    """ "name: old -> new" for every setting that differs (nested names joined by dots)."""
    old, new = _flat(old), _flat(new)
    missing = object()
    return [
        f"{k}: {old.get(k, '(unset)')} -> {new.get(k, '(unset)')}"
        for k in sorted(set(old) | set(new))
        if old.get(k, missing) != new.get(k, missing)
    ]


# --------------------------------------------------------------------------------------------
# Shard files


def scan_shard(path) -> dict:
    """Size, SHA-256 and record count of a TFRecord file, walking its length-prefixed frames.

    Returns {"bytes", "sha256", "records", "problem"}: problem is None, or says where the
    framing breaks off (a truncated file). Gzip shards are hashed but not walked (records None).
    """
    path = as_path(path)
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:  # in chunks: a shard may be larger than memory allows
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    out = {"bytes": size, "sha256": digest.hexdigest(), "records": None, "problem": None}
    if str(path).endswith(".gz"):
        return out
    offset, count = 0, 0
    with path.open("rb") as f:  # the frame headers only, one seek each
        while offset < size:
            if size - offset < 12:
                out["problem"] = f"ends inside a record header at byte {offset} (truncated)"
                break
            f.seek(offset)
            (length,) = struct.unpack("<Q", f.read(8))
            end = offset + 12 + length + 4
            if end > size:
                out["problem"] = (
                    f"record {count + 1} at byte {offset} needs {length} bytes, "
                    f"the file ends first (truncated)"
                )
                break
            offset, count = end, count + 1
    out["records"] = count
    return out


def shard_entry(path, fold: int, clips: int) -> dict:
    """What the manifest and the sidecar record of one shard file."""
    scan = scan_shard(path)
    return {
        "file": as_path(path).name,
        "fold": int(fold),
        "clips": int(clips),
        "bytes": scan["bytes"],
        "sha256": scan["sha256"],
    }


def shard_problem(path, entry: dict) -> str | None:
    """What is wrong with a shard file compared with its manifest/sidecar entry (None: intact)."""
    path = as_path(path)
    if not path.is_file():
        return "listed in the manifest but missing"
    scan = scan_shard(path)
    if scan["bytes"] != entry.get("bytes"):
        return (
            f"{scan['bytes']} bytes, the manifest says {entry.get('bytes')} "
            f"({'truncated' if scan['bytes'] < (entry.get('bytes') or 0) else 'changed'})"
        )
    if scan["sha256"] != entry.get("sha256"):
        return "SHA-256 differs from the manifest's (corrupted since it was written)"
    if scan["problem"]:
        return scan["problem"]
    if scan["records"] is not None and scan["records"] != entry.get("clips"):
        return f"{scan['records']} records, the manifest says {entry.get('clips')}"
    return None


# --------------------------------------------------------------------------------------------
# Checking a folder


def read_manifest(folder) -> dict:
    """The manifest of a records folder.

    Raises:
        RecordsError: missing, unreadable, or of another layout version.
    """
    path = RecordsFolder(folder).manifest_path
    if not path.is_file():
        raise RecordsError(
            f"{path}: missing: the build did not finish (or {folder} was not "
            f"written by emotf-build-records)"
        )
    try:
        manifest = read_json(path)
    except (ValueError, OSError) as error:
        raise RecordsError(f"{path}: unreadable ({str(error).removeprefix(f'{path}: ')})") from None
    version = manifest.get("manifest_version", 1)
    if version != MANIFEST_VERSION:
        raise RecordsError(
            f"{path}: manifest version {_shown(version)}, this emotf reads "
            f"{MANIFEST_VERSION} (no shard checksums): rebuild into a new folder "
            f"or rerun emotf-build-records with --overwrite"
        )
    problem = manifest_problem(manifest)
    if problem:
        raise RecordsError(
            f"{path}: not a valid manifest ({problem}): rebuild the folder with "
            f"emotf-build-records --overwrite"
        )
    return manifest


# What each shard entry of a manifest holds: key -> (type, upper bound for a number).
# The bounds only refuse nonsense (a 2**70-byte shard); no real build comes near them.
MAX_SHARD_BYTES = 2**50  # 1 PiB
MAX_SHARD_CLIPS = 10**9
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _shown(value, limit: int = 40) -> str:
    """A JSON value for a one-line message, cut to `limit` characters."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _count_problem(name: str, value, limit: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"'{name}' must be a whole number. Received: {name}={_shown(value)}"
    if not 0 <= value <= limit:
        return f"'{name}' must be in 0..{limit}. Received: {name}={_shown(value)}"
    return None


def shard_entry_problem(entry) -> str | None:
    """What is wrong with the shape of one manifest (or sidecar) shard entry (None: well formed):
    {"file": a shard name of this folder (`RecordsFolder.SHARD_RE`), "fold": K,
    "clips", "bytes": whole numbers >= 0, "sha256": 64 hex digits}."""
    if not isinstance(entry, dict):
        return f"a shard entry must be a JSON object. Received: {_shown(entry)}"
    missing = [key for key in ("file", "fold", "clips", "bytes", "sha256") if key not in entry]
    if missing:
        return f"a shard entry lacks {', '.join(map(repr, missing))}. Received: {_shown(entry, 80)}"
    name = entry["file"]
    fold = RecordsFolder.shard_fold(name)
    if fold is None:  # also refuses paths ('../x'): a manifest names files of its own folder
        example = RecordsFolder.shard_file(RecordsFolder.shard_name(0, 0))
        return f"'file' must be a shard name like {example}. Received: file={_shown(name)}"
    for key, limit in (
        ("fold", max((RecordsFolder.shard_folds(name) or 0) - 1, 0)),
        ("clips", MAX_SHARD_CLIPS),
        ("bytes", MAX_SHARD_BYTES),
    ):
        problem = _count_problem(key, entry[key], limit)
        if problem:
            return f"{name}: {problem}"
    if entry["fold"] != fold:
        return f"{name}: 'fold' {entry['fold']} differs from the file name's {fold}"
    if not isinstance(entry["sha256"], str) or not _SHA256.match(entry["sha256"]):
        return f"{name}: 'sha256' must be 64 hex digits. Received: sha256={_shown(entry['sha256'])}"
    return None


def manifest_problem(manifest) -> str | None:
    """What is wrong with the structure of a manifest's JSON value (None: well formed).

    Checked before anything in it is used, so that a hand-edited or damaged manifest gives one
    line naming the problem instead of a traceback deep in the check."""
    if not isinstance(manifest, dict):
        return f"expected a JSON object. Received: {type(manifest).__name__}"
    try:
        info = CorpusInfo.of(manifest)  # absent: CREMA-D (built before corpora existed)
    except CorpusInfoError as error:
        return str(error)
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        return f"'shards' must be a list of shard entries. Received: shards={_shown(shards)}"
    seen = set()
    for entry in shards:
        problem = shard_entry_problem(entry)
        if problem:
            return problem
        folds = RecordsFolder.shard_folds(entry["file"])
        if manifest.get("corpus") is not None and folds != info.num_folds:
            return (
                f"{entry['file']}: a shard of {folds} folds, but corpus.num_folds is "
                f"{info.num_folds}"
            )
        if entry["file"] in seen:
            return f"{entry['file']} is listed twice"
        seen.add(entry["file"])
    return None


def verify_records(folder, folds=None) -> list[Problem]:
    """Every problem of a records folder (empty list: intact).

    Args:
        folder: a folder written by `emotf-build-records`.
        folds: check the checksums of these folds' shards only (None: all). Presence
            (listed-but-missing, unlisted) and the sidecars' schema versions are always checked
            for the whole folder.
    """
    records = RecordsFolder(folder)
    folder = records.path
    if not folder.is_dir():
        return [Problem(str(folder), "not a folder")]
    problems = []
    owner = live_owner(folder.local_path()) if folder.is_local else None  # no lock on a URL
    if owner is not None:
        problems.append(
            Problem(
                str(records.lock_path),
                f"a build (pid {owner}) is writing this folder right now",
            )
        )
    try:
        manifest = read_manifest(folder)
    except RecordsError as error:
        file, _, problem = str(error).partition(": ")
        return problems + [Problem(file, problem)]
    if manifest.get("schema_version") != keys.SCHEMA_VERSION:
        problems.append(
            Problem(
                str(records.manifest_path),
                f"record schema version "
                f"{manifest.get('schema_version')}, this emotf reads "
                f"{keys.SCHEMA_VERSION}: rebuild into a new folder",
            )
        )
    listed = {entry["file"]: entry for entry in manifest["shards"]}  # checked: read_manifest
    wanted = None if folds is None else {int(k) for k in folds}
    for name, entry in sorted(listed.items()):
        path = folder / name
        if wanted is not None and entry["fold"] not in wanted and path.is_file():
            continue
        fault = shard_problem(path, entry)
        if fault:
            problems.append(Problem(str(path), fault))
    for path in records.shards():
        if path.name not in listed:
            problems.append(
                Problem(
                    str(path),
                    "on disk but not listed in the manifest (left "
                    "over from another or an unfinished build?)",
                )
            )
    for sidecar in records.sidecars():
        try:
            version = read_json(sidecar).get("schema_version")
        except (ValueError, OSError):
            problems.append(Problem(str(sidecar), "unreadable sidecar"))
            continue
        if version != keys.SCHEMA_VERSION:
            problems.append(
                Problem(
                    str(sidecar),
                    f"written for record schema version {version}, "
                    f"this emotf reads {keys.SCHEMA_VERSION}",
                )
            )
    return problems


def check_records(folder, folds=None, allow_incomplete: bool = False) -> dict:
    """Verify the shards a run will read (train, validation and test folds) before it starts.

    Returns a JSON-ready summary for metrics.json: {"records_verified": bool,
    "allow_incomplete": bool, "records_problems": [str], "verify_seconds": float,
    "clips_in_manifest": {fold: clips}}.

    Raises:
        RecordsError: any problem, unless `allow_incomplete` (then they are only reported).
    """
    start = time.perf_counter()
    problems = verify_records(folder, folds)
    seconds = round(time.perf_counter() - start, 3)
    if problems and not allow_incomplete:
        shown = "; ".join(map(str, problems[:8]))
        more = f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise RecordsError(
            f"{folder}: records incomplete or damaged ({len(problems)} problem(s)): {shown}{more}. "
            f"To finish: rerun emotf-build-records with the same arguments (it rebuilds only the "
            f"missing or bad shards; emotf-verify-records {folder} lists them), or pass "
            f"--allow-incomplete to use them anyway"
        )
    clips: dict[str, int] = {}
    try:
        for entry in read_manifest(folder)["shards"]:
            key = str(entry["fold"])
            clips[key] = clips.get(key, 0) + entry["clips"]
    except RecordsError:  # reported above (problems), used anyway with --allow-incomplete
        pass
    return {
        "records_verified": not problems,
        "allow_incomplete": bool(allow_incomplete),
        "records_problems": [str(p) for p in problems],
        "verify_seconds": seconds,
        "clips_in_manifest": clips,
    }


def seal_records(folder, settings: dict | None = None) -> dict:
    """Write a manifest for shards written by something other than `emotf-build-records`
    (tests, tools): every shard on disk is listed as it is now, with its record count.

    Returns the manifest written. Use only on shards you wrote yourself: sealing trusts them.
    """
    records = RecordsFolder(folder)
    shards = []
    for path in records.shards():
        scan = scan_shard(path)
        shards.append(
            {
                "file": path.name,
                "fold": RecordsFolder.shard_fold(path.name),
                "clips": scan["records"] or 0,
                "bytes": scan["bytes"],
                "sha256": scan["sha256"],
            }
        )
    settings = settings or {"schema_version": keys.SCHEMA_VERSION}
    manifest = {
        "tool": "emotf.records.manifest.seal_records",
        "manifest_version": MANIFEST_VERSION,
        "schema_version": keys.SCHEMA_VERSION,
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "shards": shards,
        "clips_written": sum(s["clips"] for s in shards),
    }
    write_json(records.manifest_path, manifest)
    return manifest
