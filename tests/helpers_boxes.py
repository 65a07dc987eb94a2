"""Frames and an MTCNN stand-in for the face-tracker tests (no MTCNN run): each frame's index
is painted into pixel [0, 0, :2], and the detector answers the boxes `faces_of(index)` gives."""

import numpy as np


class BoxDetector:
    """MTCNN stand-in: faces given per frame index (painted into pixel [0, 0, :2])."""

    def __init__(self, faces_of):
        self.faces_of, self.calls, self.batches = faces_of, [], []

    def detect_faces(self, images, box_format="xyxy"):
        self.batches.append(len(images))
        out = []
        for image in images:
            i = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
            self.calls.append(i)
            scale = image.shape[1] / 64
            out.append(
                [
                    {"box": (np.asarray(b) * scale).tolist(), "confidence": 0.99}
                    for b in self.faces_of(i)
                ]
            )
        return out


def frame(i):
    f = np.zeros((48, 64, 3), np.uint8)
    f[0, 0, 0], f[0, 0, 1] = i % 256, i // 256
    return f
