"""RAVDESS (the Ryerson Audio-Visual Database of Emotional Speech and Song): names, layout, folds.

The public release's layout, as its zips unpack::

    DATA/Actor_01/01-01-03-02-01-01-01.mp4   full audio-video, speech (the input)
    DATA/Actor_01/02-01-03-02-01-01-01.mp4   video only (no audio track): skipped
    DATA/Actor_01/03-01-03-02-01-01-01.wav   audio only: skipped (the MP4's own track is read)
    DATA/Actor_01/01-02-03-02-01-01-01.mp4   song: skipped (this corpus is the speech part)

A name is seven two-digit fields `MM-VV-EE-II-SS-RR-AA`: modality (01 full-AV, 02 video-only,
03 audio-only), vocal channel (01 speech, 02 song), emotion (01 neutral, 02 calm, 03 happy,
04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), intensity (01 normal, 02 strong; neutral
is normal only), statement (01 "Kids are talking by the door", 02 "Dogs are sitting by the
door"), repetition (01, 02), actor (01..24; odd numbers male, even female). Song has no disgust
or surprised. `parse_ravdess_name` is strict: anything else raises `RavdessNameError`.

Folds are actor-independent and canonical (the same whatever subset is on disk): actors 01..24
in number order, cut into `folds` contiguous blocks whose sizes differ by at most one. The
default 6 folds are actors 01-04, 05-08, ..., 21-24: 4 actors each, 2 male and 2 female.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from emotf.bounds import bounded, check_bounds
from emotf.corpora.base import Clip, Corpus, CorpusError, Skip, build_options
from emotf.storage import StoragePath, as_path

NAME = "ravdess"
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)
MODALITIES: dict[int, str] = {1: "full-AV", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS: dict[int, str] = {1: "speech", 2: "song"}
INTENSITIES: dict[int, str] = {1: "normal", 2: "strong"}
STATEMENTS: dict[int, str] = {1: "kids", 2: "dogs"}
SONG_EMOTIONS = EMOTIONS[:6]  # song has no disgust or surprised
FIRST_ACTOR, LAST_ACTOR = 1, 24
DEFAULT_FOLDS = 6
ACTOR_DIR = re.compile(r"^Actor_(\d{2})$")
_NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_EXPECTED = "MM-VV-EE-II-SS-RR-AA, e.g. 01-01-03-02-01-01-01"


class RavdessNameError(ValueError):
    """A file name that is not a valid RAVDESS name."""


@dataclass(frozen=True)
class RavdessName:
    """A parsed RAVDESS name (the codes as numbers)."""

    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def stem(self) -> str:
        codes = (
            self.modality,
            self.vocal_channel,
            self.emotion,
            self.intensity,
            self.statement,
            self.repetition,
            self.actor,
        )
        return "-".join(f"{c:02d}" for c in codes)

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.emotion - 1]

    @property
    def sex(self) -> str:
        """ "Male" for odd actor numbers, "Female" for even (as CREMA-D's table spells them)."""
        return "Male" if self.actor % 2 else "Female"

    @property
    def speaker(self) -> str:
        return f"{self.actor:02d}"

    @property
    def extension(self) -> str:
        """The release's extension for this modality: .mp4, or .wav for audio-only."""
        return ".wav" if self.modality == 3 else ".mp4"

    def groups(self) -> dict[str, str]:
        return {
            "sex": self.sex,
            "intensity": INTENSITIES[self.intensity],
            "vocal_channel": VOCAL_CHANNELS[self.vocal_channel],
            "statement": STATEMENTS[self.statement],
        }


def parse_ravdess_name(name: str | Path | StoragePath) -> RavdessName:
    """Parse a RAVDESS name or path (`.../Actor_01/01-01-03-02-01-01-01.mp4`) strictly.

    Raises:
        RavdessNameError: not seven two-digit fields, or a code outside its range (see the
            module docstring), a strong neutral, or a song of disgust or surprise.
    """
    text = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    stem = text.split(".", 1)[0]
    match = _NAME_RE.match(stem)
    if match is None:
        raise RavdessNameError(
            f"not a RAVDESS name (expected {_EXPECTED}). Received: name={str(name)!r}"
        )
    parsed = RavdessName(*(int(g) for g in match.groups()))
    problems = []
    for field, allowed in (
        ("modality", MODALITIES),
        ("vocal_channel", VOCAL_CHANNELS),
        ("intensity", INTENSITIES),
        ("statement", STATEMENTS),
        ("repetition", {1: "1", 2: "2"}),
    ):
        if getattr(parsed, field) not in allowed:
            problems.append(f"{field} {getattr(parsed, field):02d} not one of {sorted(allowed)}")
    if not 1 <= parsed.emotion <= len(EMOTIONS):
        problems.append(f"emotion {parsed.emotion:02d} outside 01..{len(EMOTIONS):02d}")
    if not FIRST_ACTOR <= parsed.actor <= LAST_ACTOR:
        problems.append(f"actor {parsed.actor:02d} outside {FIRST_ACTOR:02d}..{LAST_ACTOR}")
    if not problems and parsed.emotion == 1 and parsed.intensity == 2:
        problems.append("neutral has normal intensity (01) only")
    if not problems and parsed.vocal_channel == 2 and parsed.emotion > len(SONG_EMOTIONS):
        problems.append(f"song has no {parsed.emotion_name}")
    if problems:
        raise RavdessNameError(f"{'; '.join(problems)}. Received: name={str(name)!r}")
    return parsed


def ravdess_folds(num_folds: int = DEFAULT_FOLDS) -> dict[int, int]:
    """Actor (1..24) -> fold: contiguous blocks of actors in number order (module docstring)."""
    count = LAST_ACTOR - FIRST_ACTOR + 1
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or not 1 <= num_folds <= count:
        raise CorpusError(
            f"{NAME}: folds must be an integer in [1, {count}]. Received: {num_folds!r}"
        )
    return {FIRST_ACTOR + i: i * num_folds // count for i in range(count)}


@dataclass(frozen=True)
class RavdessOptions:
    """Options of `open_corpus("ravdess", ...)`."""

    folds: int = bounded(
        DEFAULT_FOLDS, ge=1, le=LAST_ACTOR, help="actor-independent folds (contiguous blocks)"
    )

    def __post_init__(self):
        check_bounds(self)


def _skip_reason(path: StoragePath, folder_actor: int) -> tuple[RavdessName | None, str]:
    """(the parsed name of an input clip, "") or (None, why the file is passed over)."""
    try:
        parsed = parse_ravdess_name(path.name)
    except RavdessNameError as error:
        return None, str(error)
    if path.name != parsed.stem + parsed.extension:
        return None, (
            f"file name is not exactly {parsed.stem}{parsed.extension} "
            "(another extension, a copy or a backup?)"
        )
    if parsed.actor != folder_actor:
        return None, f"actor {parsed.actor:02d} in the name, but in folder Actor_{folder_actor:02d}"
    if parsed.vocal_channel == 2:
        return None, "song (this corpus reads the speech part)"
    if parsed.modality == 2:
        return None, "video-only (no audio track; the full-AV 01-... file is read)"
    if parsed.modality == 3:
        return None, "audio-only (the full-AV 01-... file's own audio track is read)"
    return parsed, ""


def open_ravdess(data_dir: str | Path | StoragePath, **options) -> Corpus:
    """The full-AV speech clips of a RAVDESS folder (`Actor_NN/*.mp4`); everything else is in
    `skipped` with the reason.

    Raises:
        CorpusError: `data_dir` is not a folder, holds no `Actor_NN` folder, or no full-AV
            speech clip; an option is unknown or out of bounds.
    """
    opts = build_options(RavdessOptions, options, NAME)
    root = as_path(data_dir)
    if not root.is_dir():
        raise CorpusError(f"{NAME}: {root} is not a folder (expected Actor_01 .. Actor_24 in it)")
    clips: list[Clip] = []
    skipped: list[Skip] = []
    actor_dirs = 0
    for entry in root.iterdir():
        match = ACTOR_DIR.match(entry.name)
        if match is None or not entry.is_dir():
            skipped.append(Skip(str(entry), "not an Actor_NN folder of the RAVDESS layout"))
            continue
        actor_dirs += 1
        for path in entry.iterdir():
            if path.is_local and not path.local_path().is_file():
                skipped.append(Skip(str(path), "not a regular file"))
                continue
            parsed, reason = _skip_reason(path, int(match[1]))
            if parsed is None:
                skipped.append(Skip(str(path), reason))
                continue
            clips.append(
                Clip(
                    clip_id=parsed.stem,
                    video=str(path),
                    audio=None,
                    label=parsed.emotion_name,
                    speaker=parsed.speaker,
                    groups=parsed.groups(),
                )
            )
    if not actor_dirs:
        raise CorpusError(
            f"{NAME}: no Actor_NN folder in {root} (expected RAVDESS's layout: "
            f"Actor_01/{_EXPECTED.split(', e.g. ')[1]}.mp4 ...)"
        )
    if not clips:
        raise CorpusError(
            f"{NAME}: no full-AV speech clip (01-01-EE-II-SS-RR-AA.mp4) in the Actor_NN folders "
            f"of {root}; {len(skipped)} files passed over"
        )
    by_actor = ravdess_folds(opts.folds)
    return Corpus(
        name=NAME,
        root=str(root),
        class_names=EMOTIONS,
        clips=tuple(sorted(clips, key=lambda c: (c.speaker, c.clip_id))),
        speaker_folds={f"{a:02d}": f for a, f in by_actor.items()},
        num_folds=opts.folds,
        skipped=tuple(skipped),
    )
