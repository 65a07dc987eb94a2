"""Display rotation: a video whose display matrix turns it (a phone's portrait video, stored
landscape with a -90 degree rotation) is decoded upright, for the build and prediction alike."""

from fractions import Fraction

import numpy as np
import pytest

from emotf.media.decode import open_video
from emotf.media.files import decode_video, display_matrix
from emotf.synthetic.video import write_face_video


def _pattern(height=48, width=64):
    """An image whose orientation is unambiguous: a bright top-left corner, a ramp across."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.linspace(0, 200, width, dtype=np.uint8)[None, :]
    image[..., 2] = np.linspace(0, 200, height, dtype=np.uint8)[:, None]
    image[:12, :16, 1] = 255
    return image


def _write_mp4(path, stored, degrees, hflip=False, num=3):
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = stored.shape[1], stored.shape[0], "yuv444p"
        video.options = {"preset": "ultrafast", "qp": "0"}  # lossless: compare pixels exactly
        video.set_display_rotation(degrees, hflip=hflip)
        for i in range(num):
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(video.encode(frame))
        out.mux(video.encode())
    return path


@pytest.mark.parametrize(
    "degrees, hflip, shown",
    [
        (-90, False, lambda x: np.rot90(x, -1)),  # a phone's portrait video: a quarter clockwise
        (90, False, lambda x: np.rot90(x, 1)),
        (180, False, lambda x: np.rot90(x, 2)),
        (0, True, lambda x: x[:, ::-1]),
        (90, True, lambda x: np.rot90(x, 1)[:, ::-1]),
    ],
)
def test_frames_are_turned_as_the_display_matrix_says(tmp_path, degrees, hflip, shown):
    import av

    stored = _pattern()
    path = _write_mp4(tmp_path / "v.mp4", stored, degrees, hflip)
    with av.open(str(path)) as container:  # the matrix is really in the file
        first = next(container.decode(video=0))
        assert display_matrix(first) is not None and (first.width, first.height) == (64, 48)
        if not hflip:
            assert first.rotation % 360 == degrees % 360
    expected = shown(stored)
    info, frames = open_video(path)
    frames = list(frames)
    assert (info.height, info.width) == expected.shape[:2] and len(frames) == 3
    np.testing.assert_allclose(frames[0].astype(float), expected, atol=3)
    assert any("display matrix" in note for note in info.notes)
    decoded = decode_video(path)  # the whole-file decoder turns them the same way
    np.testing.assert_array_equal(decoded.frames[0], frames[0])
    assert any("display matrix" in note for note in decoded.notes)


def test_a_video_without_a_display_matrix_is_unchanged(tmp_path):
    path = write_face_video(tmp_path / "v.mp4", 0.3, fps=10, width=96, height=64, audio=False)
    info, frames = open_video(path)
    assert (info.height, info.width) == (64, 96) and next(frames).shape == (64, 96, 3)
    assert not any("display matrix" in note for note in info.notes)


def test_a_portrait_phone_video_is_read_upright_and_its_face_found(tmp_path):
    """Stored 320x180 with a -90 degree display matrix, it plays 180x320 with the face upright:
    the clip reader (emotf-build-records and emotf-predict) sees what a player shows, and MTCNN
    finds the face (before: "no face in any of the 10 frames")."""
    import av

    from emotf.media.preprocess import ClipSettings, read_clip

    upright = write_face_video(tmp_path / "upright.mp4", 1.0, fps=10, width=180, height=320)
    phone = write_face_video(
        tmp_path / "phone.mp4", 1.0, fps=10, width=180, height=320, display_rotation=-90
    )
    with av.open(str(phone)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
        assert next(container.decode(stream)).rotation == -90
    _, want = open_video(upright)
    _, got = open_video(phone)
    want, got = next(want).astype(float), next(got).astype(float)
    assert got.shape == want.shape == (320, 180, 3)
    assert np.abs(got - want).mean() < 4  # the same picture, up to the codec's noise

    clip = read_clip(phone, None, ClipSettings(min_duration_s=0.5))
    assert clip.source_size == (320, 180)
    assert clip.detected.sum() >= 2
    centre_x = (clip.boxes[:, 0] + clip.boxes[:, 2]) / 2
    centre_y = (clip.boxes[:, 1] + clip.boxes[:, 3]) / 2
    assert np.all((centre_x > 0) & (centre_x < 180) & (centre_y > 0) & (centre_y < 320))
    assert any("rotated 90 degrees clockwise by its display matrix" in n for n in clip.notes)
