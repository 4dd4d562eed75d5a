"""Timing worker for ``bench_pipeline.py --peers``: MediaPipe's own FaceMesh on the same images.

Runs in a separate Python environment that has ``mediapipe==0.10.21`` (it pins numpy<2 and
protobuf<5, which duchenne's environment cannot hold; MediaPipe is a benchmark-only peer,
never a duchenne dependency). Protocol, one JSON object per line: the parent sends
``{"image": "x.npy", "runs": N, "max_faces": K}``; this worker answers
``{"ms": [...], "cpu_ms": [...], "faces": n}`` (per-call wall-clock and process CPU
milliseconds of ``FaceMesh(static_image_mode=True).process``: detection + 468 landmarks
on every call).
"""

from __future__ import annotations

import json
import sys
import time

import mediapipe as mp
import numpy as np


def main() -> None:
    meshes: dict[int, object] = {}
    for line in sys.stdin:
        job = json.loads(line)
        image = np.load(job["image"])
        k = int(job["max_faces"])
        mesh = meshes.setdefault(
            k, mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=k)
        )
        result = mesh.process(image)  # warm-up, and the face count
        faces = len(result.multi_face_landmarks or [])
        ms, cpu = [], []
        for _ in range(int(job["runs"])):
            start, start_cpu = time.perf_counter(), time.process_time()
            mesh.process(image)
            ms.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
        print(json.dumps({"ms": ms, "cpu_ms": cpu, "faces": faces}), flush=True)


if __name__ == "__main__":
    main()
