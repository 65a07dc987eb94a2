"""Lazily converted frames (`emotf.media.decode.YUVFrame`): a crop converted only around its box
is the crop of the frame converted whole, and `ClipReader` gives the same crops and boxes with
and without them (the build's records and `emotf-predict` depend on it)."""

from fractions import Fraction

import numpy as np
import pytest

from emotf.media.decode import YUVFrame, open_video
from emotf.media.faces import crop_faces
from emotf.media.preprocess import ClipReader, ClipSettings, crop_box
from emotf.synthetic.video import write_face_video


def _write_noise(path, width, height, colors=None, num=3, display_rotation=0, pix_fmt="yuv420p"):
    """A 4:2:0 H.264 video of random pixels (every chroma sample differs from its neighbours);
    colors: (colorspace, color_range) tags as FFmpeg numbers them (None: untagged)."""
    import av

    rng = np.random.default_rng(width * height)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.options = {"preset": "ultrafast", "qp": "4"}
        if colors is not None:
            video.codec_context.colorspace, video.codec_context.color_range = colors
        if display_rotation:
            video.set_display_rotation(display_rotation)
        for i in range(num):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(video.encode(frame))
        out.mux(video.encode())
    return path


def _boxes(width, height, rng, count=60):
    """Boxes of every kind a tracker gives: inside, across an edge, past a corner, larger than
    the frame, far outside, fractional and whole pixel coordinates."""
    boxes = [
        (0.0, 0.0, width, height),
        (-30.5, -20.25, 40.75, 50.5),
        (width - 41.3, height - 33.9, width + 25.1, height + 40.2),
        (-2 * width, -2 * height, 3 * width, 3 * height),
        (width + 10.0, 5.0, width + 60.0, 55.0),
        (-0.99, 10.0, 1.2, 12.5),
    ]
    for _ in range(count):
        side = rng.uniform(4, 1.2 * min(width, height))
        x0, y0 = rng.uniform(-side / 2, width - side / 2), rng.uniform(-side / 2, height - side / 2)
        boxes.append((x0, y0, x0 + side, y0 + side))
    return np.array(boxes, np.float32)


@pytest.mark.parametrize(
    "width, height, colors",
    [(330, 250, None), (642, 362, (1, 2)), (96, 64, (5, 1))],  # BT.709 full range, BT.601 TV
)
def test_a_crop_around_its_box_is_the_crop_of_the_whole_frame(tmp_path, width, height, colors):
    path = _write_noise(tmp_path / "noise.mp4", width, height, colors)
    _, whole = open_video(path, lazy=False)
    _, lazy = open_video(path, lazy=True)
    rng = np.random.default_rng(0)
    canvas = None
    for rgb, frame in zip(whole, lazy, strict=True):
        assert isinstance(frame, YUVFrame)
        assert frame.shape == rgb.shape
        for box in _boxes(width, height, rng):
            for size in (224, 37):
                if canvas is None:
                    canvas = np.zeros(rgb.shape, np.uint8)
                got = crop_box(frame, box, size, canvas)
                want = crop_faces(rgb[None], box[None], size)[0]
                np.testing.assert_array_equal(got, want, err_msg=f"box {box}, size {size}")
        np.testing.assert_array_equal(np.asarray(frame), rgb)


def test_turned_and_other_format_videos_are_converted_whole(tmp_path):
    """A display-matrix turn or a format other than 4:2:0: frames come as arrays, as before."""
    turned = _write_noise(tmp_path / "turned.mp4", 64, 48, display_rotation=-90)
    _, frames = open_video(turned, lazy=True)
    assert all(isinstance(f, np.ndarray) and f.shape == (64, 48, 3) for f in frames)
    full_chroma = _write_noise(tmp_path / "444.mp4", 63, 47, pix_fmt="yuv444p")
    _, frames = open_video(full_chroma, lazy=True)
    assert all(isinstance(f, np.ndarray) and f.shape == (47, 63, 3) for f in frames)


def test_clip_reader_gives_the_same_crops_lazily(tmp_path):
    """The build's and prediction's crops, boxes and detections with lazy frames are those of
    frames converted whole (a face that leaves the frame, a second face)."""
    path = write_face_video(
        tmp_path / "face.mp4",
        2.0,
        width=480,
        height=270,
        no_face=((0.8, 1.1),),
        second_face=True,
        audio=True,
    )
    settings = ClipSettings()
    whole = ClipReader(path, None, settings, lazy=False)
    lazy = ClipReader(path, None, settings, whole.tracker, lazy=True)
    want, got = list(whole.crops()), list(lazy.crops())
    assert lazy.canvas is not None  # the lazy path was taken
    assert len(got) == len(want) == whole.info.frames
    for a, b in zip(want, got, strict=True):
        assert (a.index, a.detected, a.face) == (b.index, b.detected, b.face)
        np.testing.assert_array_equal(a.box, b.box)
        np.testing.assert_array_equal(a.crop, b.crop)
    assert whole.faces.stats == lazy.faces.stats
