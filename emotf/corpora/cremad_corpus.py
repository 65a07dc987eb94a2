"""CREMA-D as a `Corpus`: the seam over `emotf.corpora.cremad` (names, labels, canonical folds).

Layout: `DATA/VideoFlash/<clip id>.flv` (the input) and `DATA/AudioWAV/<clip id>.wav` (its
separate audio; without one, the clip's audio is the FLV's own track: `Clip.audio` None). Clip
ids are strict CREMA-D names (`1001_DFA_ANG_XX`); a file not named exactly `<clip id>.flv` /
`<clip id>.wav`, and a WAV without its video, is skipped with the reason, as the records build
does. Classes are `cremad.EMOTIONS` in order; the speaker is the actor id; the folds are
`cremad.canonical_folds` (10 folds over all 91 actors, the same whatever subset is on disk).
Groups: the actor's sex (`VideoDemographics.csv`), the clip's intensity and sentence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from emotf.bounds import bounded, check_bounds
from emotf.corpora.base import Clip, Corpus, CorpusError, Skip, build_options
from emotf.corpora.cremad import (
    EMOTIONS,
    NUM_FOLDS,
    ClipName,
    ClipNameError,
    canonical_folds,
    load_actor_sexes,
    parse_clip_name,
)
from emotf.storage import StoragePath, as_path

NAME = "cremad"
VIDEO_DIR, VIDEO_EXT = "VideoFlash", ".flv"
AUDIO_DIR, AUDIO_EXT = "AudioWAV", ".wav"
UNKNOWN_SEX = "unknown"
MAX_FOLD_SEED = 2**32 - 1  # numpy's seeds


@dataclass(frozen=True)
class CremadOptions:
    """Options of `open_corpus("cremad", ...)` (those of `cremad.canonical_folds`)."""

    folds: int = bounded(
        NUM_FOLDS, choices=(NUM_FOLDS,), help="CREMA-D's canonical actor folds (10 only)"
    )
    fold_seed: int = bounded(0, ge=0, le=MAX_FOLD_SEED, help="seed of the actors' fold order")
    stratify_by_sex: bool = bounded(False, help="balance the actors' sexes over the folds")

    def __post_init__(self):
        check_bounds(self)


def _files(folder: StoragePath, ext: str, skipped: list[Skip]) -> dict[str, StoragePath]:
    """{clip id: path} of the files named exactly `<clip id><ext>`; the rest into `skipped`."""
    found: dict[str, StoragePath] = {}
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        name = path.name
        if path.is_local and not path.local_path().is_file():
            reason = "not a regular file"
        elif not name.endswith(ext):
            suffixes = "".join(PurePosixPath(name).suffixes)
            reason = f"not a {ext} file (extension {suffixes or 'none'!s})"
        else:
            stem = name[: -len(ext)]
            try:
                clip_id = parse_clip_name(stem).clip_id
            except ClipNameError as error:
                reason = str(error)
            else:
                if clip_id == stem and clip_id not in found:
                    found[clip_id] = path
                    continue
                reason = (
                    f"file name is not exactly {clip_id}{ext} (a copy or backup?); only "
                    f"{folder / (clip_id + ext)} is read for clip {clip_id}"
                )
        skipped.append(Skip(str(path), reason))
    return found


def _clip(name: ClipName, video: str, audio: str | None, sexes: dict[int, str]) -> Clip:
    return Clip(
        clip_id=name.clip_id,
        video=video,
        audio=audio,
        label=name.emotion,
        speaker=str(name.actor_id),
        groups={
            "sex": sexes.get(name.actor_id, UNKNOWN_SEX),
            "intensity": name.intensity,
            "sentence": name.sentence,
        },
    )


def _corpus(root: StoragePath, clips: list[Clip], skipped: list[Skip], opts) -> Corpus:
    folds = canonical_folds(opts.fold_seed, opts.stratify_by_sex)
    return Corpus(
        name=NAME,
        root=str(root),
        class_names=EMOTIONS,
        clips=tuple(sorted(clips, key=lambda c: c.clip_id)),
        speaker_folds={str(actor): fold for actor, fold in folds.items()},
        num_folds=NUM_FOLDS,
        skipped=tuple(skipped),
    )


def open_cremad(data_dir: str | Path | StoragePath, **options) -> Corpus:
    """The clips of a CREMA-D folder (`VideoFlash/*.flv`, `AudioWAV/*.wav`).

    Raises:
        CorpusError: `data_dir` has no `VideoFlash` folder, or no clip in it; a bad option.
    """
    opts = build_options(CremadOptions, options, NAME)
    root = as_path(data_dir)
    if not (root / VIDEO_DIR).is_dir():
        raise CorpusError(
            f"{NAME}: no {VIDEO_DIR} folder in {root} (expected CREMA-D's layout: "
            f"{VIDEO_DIR}/1001_DFA_ANG_XX{VIDEO_EXT} and {AUDIO_DIR}/1001_DFA_ANG_XX{AUDIO_EXT})"
        )
    skipped: list[Skip] = []
    videos = _files(root / VIDEO_DIR, VIDEO_EXT, skipped)
    audios = _files(root / AUDIO_DIR, AUDIO_EXT, skipped)
    sexes = load_actor_sexes()
    clips = []
    for clip_id in sorted(set(videos) | set(audios)):
        if clip_id not in videos:
            path = root / VIDEO_DIR / f"{clip_id}{VIDEO_EXT}"
            skipped.append(Skip(str(path), "video file missing (audio only)"))
            continue
        audio = str(audios[clip_id]) if clip_id in audios else None
        clips.append(_clip(parse_clip_name(clip_id), str(videos[clip_id]), audio, sexes))
    if not clips:
        raise CorpusError(
            f"{NAME}: no clip named like 1001_DFA_ANG_XX{VIDEO_EXT} in {root / VIDEO_DIR}; "
            f"{len(skipped)} files passed over"
        )
    return _corpus(root, clips, skipped, opts)


def cremad_corpus_from_names(
    names: Iterable[str], data_dir: str | Path | StoragePath = ".", **options
) -> Corpus:
    """The corpus of listed clip names (e.g. `cremad.load_clip_names()`: all 7,442), with the
    paths they have in `data_dir`'s layout; nothing is read from disk.

    Raises:
        ClipNameError: a name is not a CREMA-D clip name.
        CorpusError: a bad option, or a name listed twice.
    """
    opts = build_options(CremadOptions, options, NAME)
    root = as_path(data_dir)
    sexes = load_actor_sexes()
    clips = [
        _clip(
            parsed,
            str(root / VIDEO_DIR / f"{parsed.clip_id}{VIDEO_EXT}"),
            str(root / AUDIO_DIR / f"{parsed.clip_id}{AUDIO_EXT}"),
            sexes,
        )
        for parsed in map(parse_clip_name, names)
    ]
    return _corpus(root, clips, [], opts)
