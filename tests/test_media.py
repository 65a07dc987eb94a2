"""emotf.media.files: decoding video and audio, and the checks that name file and problem."""

from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile

from emotf.media.files import MediaError, decode_video, encode_jpegs, is_lfs_pointer, load_audio

LFS = "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"


def write_video(path, frames, fps, pcm=None, audio_rate=16000):
    """Encode RGB frames [T,H,W,3] as FLV1 video (and mono int16 audio) in an FLV."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="flv") as out:
        video = out.add_stream("flv", rate=rate)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        audio = None
        if pcm is not None:
            audio = out.add_stream("mp3", rate=44100)
            audio.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if audio is not None:
            frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = audio_rate, 0, Fraction(1, audio_rate)
            out.mux(audio.encode(frame))
            out.mux(audio.encode())


def tone(seconds, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001])
def test_decode_video_reads_frames_and_the_stream_rate(tmp_path, fps):
    frames = np.random.default_rng(0).integers(0, 255, (12, 64, 96, 3), dtype=np.uint8)
    write_video(tmp_path / "v.flv", frames, fps)
    video = decode_video(tmp_path / "v.flv")
    assert video.frames.shape == (12, 64, 96, 3) and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(fps, rel=1e-3)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "empty file"),
        (LFS.encode(), "Git LFS pointer"),
        (b"garbage" * 20, "video"),
    ],
)
def test_bad_video_files_raise_media_error_naming_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "x.flv"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=problem) as info:
        decode_video(path)
    assert str(info.value).startswith(f"{path}: ")


def test_truncated_video_keeps_the_frames_before_the_cut(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (30, 64, 96, 3), dtype=np.uint8)
    write_video(tmp_path / "v.flv", frames, 30)
    data = (tmp_path / "v.flv").read_bytes()
    (tmp_path / "cut.flv").write_bytes(data[: len(data) // 2])
    video = decode_video(tmp_path / "cut.flv")
    assert 0 < len(video.frames) < 30


def test_is_lfs_pointer(tmp_path):
    (tmp_path / "p").write_text(LFS)
    (tmp_path / "q").write_bytes(b"RIFF....")
    assert is_lfs_pointer(tmp_path / "p") and not is_lfs_pointer(tmp_path / "q")


def test_wav_stereo_44k_is_downmixed_and_resampled(tmp_path):
    pcm = tone(1.0, 44100)
    soundfile.write(tmp_path / "s.wav", np.stack([pcm, pcm], 1), 44100, subtype="PCM_16")
    out, notes = load_audio(tmp_path / "s.wav")
    assert out.dtype == np.int16 and out.ndim == 1 and abs(len(out) - 16000) <= 1
    assert any("downmixed" in n for n in notes) and any("44100 Hz -> 16000" in n for n in notes)
    assert np.abs(out).max() == pytest.approx(8000, rel=0.05)


def test_wav_16k_mono_is_read_unchanged(tmp_path):
    pcm = tone(0.5)
    soundfile.write(tmp_path / "m.wav", pcm, 16000, subtype="PCM_16")
    out, notes = load_audio(tmp_path / "m.wav")
    np.testing.assert_array_equal(out, pcm)
    assert notes == []


def test_audio_from_a_video_track(tmp_path):
    frames = np.zeros((10, 64, 96, 3), np.uint8)
    write_video(tmp_path / "v.flv", frames, 30, pcm=tone(1.0))
    out, notes = load_audio(tmp_path / "v.flv")
    assert out.dtype == np.int16 and abs(len(out) - 16000) < 2000
    assert any("track" in n for n in notes)


def test_empty_wav_and_video_without_audio_raise(tmp_path):
    soundfile.write(tmp_path / "e.wav", np.zeros(0, np.int16), 16000, subtype="PCM_16")
    with pytest.raises(MediaError, match="empty audio"):
        load_audio(tmp_path / "e.wav")
    write_video(tmp_path / "v.flv", np.zeros((5, 64, 96, 3), np.uint8), 30)
    with pytest.raises(MediaError, match="no audio track"):
        load_audio(tmp_path / "v.flv")


def test_encode_jpegs_round_trip():
    import cv2

    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[..., 0] = 200  # red
    (jpeg,) = encode_jpegs(img)
    back = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert back[..., 0].mean() > 190 and back[..., 2].mean() < 10


def test_encode_jpegs_bytes_are_those_of_the_reversed_channel_copy():
    """`encode_jpegs` converts RGB to BGR with cv2.cvtColor: the same JPEG bytes as the
    strided `image[..., ::-1]` copy it replaced (records stay byte-identical)."""
    import cv2

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90]
    want = [
        cv2.imencode(".jpg", np.ascontiguousarray(im[..., ::-1]), params)[1].tobytes()
        for im in images
    ]
    assert encode_jpegs(images, 90) == want


def test_integer_pcm_of_any_width_is_scaled_to_its_full_range():
    """PyAV hands s16, s32 or u8 samples to both decoders (emotf.media.files and .decode):
    each is scaled by its own range (an s32 track once came through unscaled)."""
    import numpy as np

    from emotf.media.files import pcm_to_float

    np.testing.assert_allclose(pcm_to_float(np.array([-32768, 0, 16384], np.int16)), [-1, 0, 0.5])
    np.testing.assert_allclose(pcm_to_float(np.array([-(2**31), 2**30], np.int32)), [-1, 0.5])
    np.testing.assert_allclose(pcm_to_float(np.array([0, 128, 192], np.uint8)), [-1, 0, 0.5])
    assert pcm_to_float(np.array([0.25], np.float32)).tolist() == [0.25]
