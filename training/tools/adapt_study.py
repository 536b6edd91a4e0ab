"""Synthetic check of ``depth-perception adapt`` (no real robot data: labelled as such).

A robot drives through a procedural room of a domain the bundled weights never saw
(``indoor`` rooms with the ``randomized`` material / lighting / field-of-view set; the bundled
model was trained on the default indoor domain). The camera path is written as the robot
would record it: images, camera_info, ``/tf`` odometry and ``/tf_static`` mounting
(:mod:`training.data.posed_bag_fixture`); optionally the odometry is corrupted (a scale error of
the translations and Gaussian yaw noise per TF sample). ``adapt`` runs on that bag; the
ground-truth depth, which the bag does not contain, is used **only** to score the starting and
the adapted checkpoint on held-out frames: the rest of the same room's path (not in the bag)
and a second room of the same domain.

``python -m training.tools.adapt_study --out runs/adapt_study/clean [--odom-scale 1.02
--yaw-noise-deg 0.5]`` writes ``result.json`` there and prints a table row.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HZ = 10
T0 = 1_700_000_000 * 10**9


def noisy_odometry(
    base_poses: Sequence[np.ndarray], scale: float, yaw_deg: float, seed: int
) -> list[np.ndarray]:
    """Odometry with a translation scale error and independent yaw noise per sample."""
    rng = np.random.default_rng(seed)
    origin = base_poses[0][:3, 3]
    out = []
    for pose in base_poses:
        p = pose.copy()
        p[:3, 3] = origin + scale * (pose[:3, 3] - origin)
        if yaw_deg > 0:
            a = math.radians(rng.normal(0.0, yaw_deg))
            yaw = np.array(
                [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]
            )
            p[:3, :3] = yaw @ p[:3, :3]  # a heading error about the odometry frame's z (up)
        out.append(p)
    return out


def score(
    checkpoint: str | Path, frames: Sequence[Any], min_depth: float, max_depth: float
) -> dict[str, float]:
    """AbsRel, delta1 and the metric scale (median of per-frame median pred / gt) over frames
    (the model is run at the frames' size)."""
    import torch

    from depth_perception.checkpoint import load_model
    from depth_perception.metrics import depth_metrics
    from training.objectives.photometric import metric_factor

    model, meta = load_model(checkpoint)
    mean = np.asarray(meta.mean, dtype=np.float32)
    std = np.asarray(meta.std, dtype=np.float32)
    rel, a1, ratios = [], [], []
    with torch.no_grad():
        for fr in frames:
            x = (fr.rgb.astype(np.float32) / 255.0 - mean) / std
            t = torch.from_numpy(x.transpose(2, 0, 1)[None].copy())
            k = torch.from_numpy(fr.intrinsics.matrix)[None].float()
            pred = model(t)["depth"] * metric_factor(model, k)
            pred = torch.nn.functional.interpolate(pred, size=fr.depth.shape, mode="bilinear")
            pred = np.clip(pred[0, 0].numpy(), min_depth, max_depth)
            gt = fr.depth
            valid = np.isfinite(gt) & (gt >= min_depth) & (gt <= max_depth)
            m = depth_metrics(pred, gt, valid)
            rel.append(m["abs_rel"])
            a1.append(m["a1"])
            ratios.append(float(np.median(pred[valid] / gt[valid])))
    return {
        "abs_rel": float(np.mean(rel)),
        "delta1": float(np.mean(a1)),
        "scale": float(np.median(ratios)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one study configuration (see the module docstring)."""
    from depth_perception.synthetic.randomized import depth_range_for, make_world
    from training.data.posed_bag_fixture import base_poses_from_camera, write_posed_bag
    from training.tools import adapt

    p = argparse.ArgumentParser(prog="python -m training.tools.adapt_study", description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--weights", default="depth_perception/weights/lightweight")
    p.add_argument("--scene", type=int, default=9100, help="room of the bag (test scenes 9000+)")
    p.add_argument("--frames", type=int, default=200, help="bag frames at 10 Hz (2 cm apart)")
    p.add_argument("--eval-frames", type=int, default=24, help="per held-out set")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--anchor-weight", type=float, default=0.0)
    p.add_argument("--odom-scale", type=float, default=1.0)
    p.add_argument("--yaw-noise-deg", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.process_time()
    lo, hi = depth_range_for("indoor", "randomized")
    w, h = args.width, args.height
    room = make_world("indoor", w, h, args.seed, 70.0, args.scene, "randomized")
    other = make_world("indoor", w, h, args.seed, 70.0, args.scene + 1, "randomized")
    n = args.frames
    loop = room.frames_per_loop
    if n >= loop:
        raise ValueError(f"--frames {n} must be below the room's {loop}-frame loop")
    bag_frames = [room.render(i) for i in range(n)]
    held = np.linspace(n + 10, loop - 10, args.eval_frames).round().astype(int)
    eval_sets = {
        "same room, unseen path": [room.render(int(i)) for i in held],
        "another room": [
            other.render(int(i))
            for i in np.linspace(0, other.frames_per_loop - 1, args.eval_frames).astype(int)
        ],
    }
    stamps = [T0 + i * 10**9 // HZ for i in range(n)]
    base = base_poses_from_camera([f.pose for f in bag_frames])
    base = noisy_odometry(base, args.odom_scale, args.yaw_noise_deg, args.seed + 1)
    bag = out / "bag"
    if bag.exists():
        import shutil

        shutil.rmtree(bag)
    write_posed_bag(
        bag,
        [f.rgb for f in bag_frames],
        stamps,
        bag_frames[0].intrinsics,
        list(zip(stamps, base, strict=True)),
    )
    render_cpu = time.process_time() - t_start
    before = {k: score(args.weights, v, lo, hi) for k, v in eval_sets.items()}
    t_adapt = time.process_time()
    adapt.main(
        [
            str(bag),
            "--image-topic",
            "/camera/image_raw",
            "--weights",
            args.weights,
            "--out",
            str(out / "adapted"),
            "--width",
            str(w),
            "--height",
            str(h),
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--lr",
            str(args.lr),
            "--anchor-weight",
            str(args.anchor_weight),
            "--threads",
            "1",
            "--no-progress",
            "--restart",
            "--overwrite",
        ]
    )
    adapt_cpu = time.process_time() - t_adapt
    after = {k: score(out / "adapted", v, lo, hi) for k, v in eval_sets.items()}
    result = {
        "args": vars(args),
        "bag_seconds": (n - 1) / HZ,
        "bag_metres": float(
            sum(
                np.linalg.norm(b.pose[:3, 3] - a.pose[:3, 3])
                for a, b in itertools.pairwise(bag_frames)
            )
        ),
        "render_cpu_s": render_cpu,
        "adapt_cpu_s": adapt_cpu,
        "before": before,
        "after": after,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    for key in eval_sets:
        b, a = before[key], after[key]
        print(
            f"| {key} | odom x{args.odom_scale:g}, yaw {args.yaw_noise_deg:g} deg | "
            f"{b['abs_rel']:.3f} -> {a['abs_rel']:.3f} | {b['delta1']:.3f} -> {a['delta1']:.3f} "
            f"| {b['scale']:.3f} -> {a['scale']:.3f} |"
        )
    print(f"adapt CPU {adapt_cpu / 60:.1f} min, bag {result['bag_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
