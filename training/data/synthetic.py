"""Samples from the procedural synthetic worlds of ``depth_perception.synthetic``.

Splits are disjoint ranges of scene indices, so no scene is shared between them:
train 0..7999, val 8000..8999, test 9000..9999 (the demo renders scenes 9000+, i.e. test).
Sample ``i`` is frame slot ``i % frames_per_scene`` of scene ``start + i // frames_per_scene``;
the slots are spread evenly along the scene's closed camera path. Sky (+inf depth) is invalid
(``depth`` 0, ``valid`` False); labels are the family's classes (``classes_for(family)``).

``domain`` selects the world: ``default`` (the furnished rooms / towns at a fixed field of
view) or ``randomized`` (built for transfer to real cameras: randomised spaces, materials,
lights and cameras with the field of view drawn per scene, see
``depth_perception.synthetic.randomized``). In YAML: ``data.options.domain: randomized``.
With ``default_fraction`` > 0 a randomised data set takes that share of its scenes (a fixed,
seed-independent choice per scene index) from the default world instead, at ``hfov_deg``: a
mixture that keeps the default rooms' statistics in view while learning the randomised ones.

Frames are rendered on the fly (deterministic in seed, scene, frame and camera settings) or,
with ``cache_dir``, rendered once and stored as one ``.npz`` per frame (written atomically,
so several DataLoader workers can share a cache directory, and a fixed set can be pre-rendered
once so that training is not bound by the renderer).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from depth_perception.camera import CameraIntrinsics
from training.data.base import CorruptSampleError, SampleDataset, Transform
from training.data.sample import Sample, relative_pose

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
SPLIT_SCENES: dict[str, tuple[int, int]] = {
    "train": (0, 8000),
    "val": (8000, 9000),
    "test": (9000, 10000),
}


class SyntheticDataset(SampleDataset):
    """Single frames of the synthetic worlds (see the module docstring).

    Args:
        family: ``"indoor"`` or ``"road"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        width, height: image size.
        frames_per_scene: frames taken from each scene's camera path.
        seed: global seed of the worlds.
        cache_dir: optional directory for rendered frames (.npz).
        num_scenes: use only the first ``num_scenes`` scenes of the split (default: all).
        hfov_deg: horizontal field of view of the camera (``default`` domain only; the
            randomised domain draws it per scene, and ``K`` follows).
        transform: applied to every sample.
        domain: ``"default"`` or ``"randomized"``.
        default_fraction: ``randomized`` only: share of the scenes, in [0, 1), rendered from
            the default world instead (see :meth:`scene_domain`).

    Raises:
        ValueError: unknown family, split or domain, non-positive sizes / counts, or a
            ``default_fraction`` outside [0, 1) or given for the default domain.
    """

    name = "synthetic"

    def __init__(
        self,
        family: str = "indoor",
        split: str = "train",
        width: int = 320,
        height: int = 240,
        frames_per_scene: int = 8,
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        num_scenes: int | None = None,
        hfov_deg: float = 70.0,
        transform: Transform | None = None,
        domain: str = "default",
        default_fraction: float = 0.0,
    ) -> None:
        super().__init__(transform)
        from depth_perception.synthetic.classes import classes_for
        from depth_perception.synthetic.randomized import check_domain

        names, _ = classes_for(family)  # raises ValueError for an unknown family
        check_domain(domain)
        if split not in SPLIT_SCENES:
            raise ValueError(f"split must be one of {tuple(SPLIT_SCENES)}, got {split!r}")
        if frames_per_scene < 1 or width < 8 or height < 8:
            raise ValueError(
                f"need frames_per_scene >= 1 and a size of at least 8x8, got {frames_per_scene}, "
                f"{width}x{height}"
            )
        if not 0.0 <= default_fraction < 1.0 or (default_fraction and domain == "default"):
            raise ValueError(
                f"default_fraction must be in [0, 1) and only set for the randomized domain, "
                f"got {default_fraction!r} with domain {domain!r}"
            )
        start, stop = SPLIT_SCENES[split]
        if num_scenes is not None:
            if not 1 <= num_scenes <= stop - start:
                raise ValueError(f"num_scenes must be in 1..{stop - start} for {split!r}")
            stop = start + int(num_scenes)
        self.family = family
        self.domain = domain
        self.default_fraction = float(default_fraction)
        self.split = split
        self.width, self.height = int(width), int(height)
        self.frames_per_scene = int(frames_per_scene)
        self.seed = int(seed)
        self.hfov_deg = float(hfov_deg)
        self.scene_range = (start, stop)
        self.class_names = tuple(names)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._worlds: OrderedDict[int, Any] = OrderedDict()
        self.max_worlds = 4  # worlds kept per process; a scene is ~30 ms to rebuild

    def __len__(self) -> int:
        return (self.scene_range[1] - self.scene_range[0]) * self.frames_per_scene

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_worlds"] = OrderedDict()
        return state

    def scene_and_slot(self, index: int) -> tuple[int, int]:
        """(scene index, frame slot) of sample ``index``."""
        return self.scene_range[0] + index // self.frames_per_scene, index % self.frames_per_scene

    def scene_domain(self, scene: int) -> str:
        """The world ``scene`` is rendered from: ``self.domain``, or ``default`` for the share
        ``default_fraction`` of a randomised set's scenes.

        The choice is a low-discrepancy sequence of the scene index (golden-ratio fractional
        parts), so any run of consecutive scenes holds very nearly that share.
        """
        if self.default_fraction and (scene * _GOLDEN) % 1.0 < self.default_fraction:
            return "default"
        return self.domain

    def path_of(self, index: int) -> str:
        scene, slot = self.scene_and_slot(index)
        domain = self.scene_domain(scene)
        domain = "" if domain == "default" else f"{domain}/"
        return (
            str(self._cache_path(scene, slot, 0))
            if self.cache_dir
            else (f"synthetic:{domain}{self.family}/seed{self.seed}/scene{scene}/slot{slot}")
        )

    def world(self, scene: int) -> Any:
        """The ``SyntheticWorld`` of ``scene`` (kept in a small per-process cache)."""
        from depth_perception.synthetic.randomized import make_world

        if scene in self._worlds:
            self._worlds.move_to_end(scene)
            return self._worlds[scene]
        world = make_world(
            self.family,
            self.width,
            self.height,
            self.seed,
            self.hfov_deg,
            scene,
            self.scene_domain(scene),
        )
        self._worlds[scene] = world
        while len(self._worlds) > self.max_worlds:
            self._worlds.popitem(last=False)
        return world

    def path_index(self, world: Any, slot: int) -> int:
        """Frame index on the camera path of frame slot ``slot``."""
        return (slot * world.frames_per_loop) // self.frames_per_scene

    def _cache_path(self, scene: int, slot: int, offset: int) -> Path:
        root = self.cache_dir if self.cache_dir is not None else Path(".")
        domain = self.scene_domain(scene)
        if domain == "default":
            tag = f"{self.family}_{self.width}x{self.height}_h{self.hfov_deg:g}_s{self.seed}"
        else:  # the field of view is drawn per scene
            tag = f"{domain}_{self.family}_{self.width}x{self.height}_s{self.seed}"
        return root / tag / f"{scene:05d}" / f"f{slot:04d}_o{offset:+d}.npz"

    def frame(self, scene: int, slot: int, offset: int = 0) -> dict[str, np.ndarray]:
        """Render (or read from the cache) slot ``slot`` of ``scene`` moved by ``offset`` frames.

        Returns ``rgb``, ``depth`` (+inf sky), ``labels``, ``K`` (3x3) and ``pose`` (4x4
        camera-to-world).
        """
        path = self._cache_path(scene, slot, offset) if self.cache_dir else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as data:
                    return {k: data[k] for k in ("rgb", "depth", "labels", "K", "pose")}
            except (OSError, ValueError, KeyError, EOFError) as err:
                raise CorruptSampleError(
                    path, f"unreadable cache file ({err}); delete it"
                ) from err
        world = self.world(scene)
        fr = world.render(self.path_index(world, slot) + offset)
        out = {
            "rgb": fr.rgb,
            "depth": fr.depth,
            "labels": fr.labels,
            "K": fr.intrinsics.matrix,
            "pose": fr.pose,
        }
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, **out)
            os.replace(tmp, path)  # atomic: concurrent workers never read a partial file
        return out

    def _intrinsics(self, k: np.ndarray) -> CameraIntrinsics:
        return CameraIntrinsics.from_matrix(k, self.width, self.height)

    def load(self, index: int) -> Sample:
        scene, slot = self.scene_and_slot(index)
        fr = self.frame(scene, slot)
        return Sample.build(
            fr["rgb"],
            self._intrinsics(fr["K"]),
            depth=fr["depth"],
            labels=fr["labels"],
            meta={"scene": scene, "slot": slot, "pose": fr["pose"]},
        )


class SyntheticSequenceDataset(SyntheticDataset):
    """Synthetic frames with temporal neighbours and exact relative poses (self-supervised).

    Same arguments as :class:`SyntheticDataset` plus ``frame_offsets`` (neighbours, in path
    frames times ``stride``). ``poses[k]`` maps target-camera points into neighbour k's camera
    (``inv(pose_nb) @ pose_target``); ``meta["pose"]`` is the target's camera-to-world pose.
    """

    name = "synthetic_sequence"

    def __init__(
        self,
        family: str = "indoor",
        split: str = "train",
        width: int = 320,
        height: int = 240,
        frames_per_scene: int = 8,
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        num_scenes: int | None = None,
        hfov_deg: float = 70.0,
        frame_offsets: Sequence[int] = (-1, 1),
        stride: int = 1,
        transform: Transform | None = None,
        domain: str = "default",
    ) -> None:
        super().__init__(
            family,
            split,
            width,
            height,
            frames_per_scene,
            seed,
            cache_dir,
            num_scenes,
            hfov_deg,
            transform,
            domain,
        )
        self.frame_offsets = tuple(int(o) for o in frame_offsets)
        if not self.frame_offsets or 0 in self.frame_offsets or stride < 1:
            raise ValueError(
                f"frame_offsets must be non-empty and non-zero and stride >= 1, got "
                f"{frame_offsets}, {stride}"
            )
        self.stride = int(stride)

    def load(self, index: int) -> Sample:
        scene, slot = self.scene_and_slot(index)
        fr = self.frame(scene, slot)
        nbs = [self.frame(scene, slot, o * self.stride) for o in self.frame_offsets]
        return Sample.build(
            fr["rgb"],
            self._intrinsics(fr["K"]),
            depth=fr["depth"],
            labels=fr["labels"],
            neighbours=[nb["rgb"] for nb in nbs],
            poses=[relative_pose(fr["pose"], nb["pose"]) for nb in nbs],
            meta={
                "scene": scene,
                "slot": slot,
                "pose": fr["pose"],
                "offsets": tuple(o * self.stride for o in self.frame_offsets),
            },
        )


def _prerender_scenes(args: tuple[dict[str, Any], list[int], tuple[int, ...]]) -> int:
    """Worker of :func:`prerender`: every slot (and offset) of the given scenes."""
    kwargs, scenes, offsets = args
    dataset = SyntheticDataset(**kwargs)
    done = 0
    for scene in scenes:
        for slot in range(dataset.frames_per_scene):
            for offset in offsets:
                dataset.frame(scene, slot, offset)
                done += 1
        dataset._worlds.clear()  # one scene at a time: its world is built once
    return done


def prerender(
    dataset: SyntheticDataset, workers: int = 1, offsets: Sequence[int] = (0,)
) -> dict[str, float]:
    """Render every frame of ``dataset`` into its ``cache_dir`` once, scene by scene.

    Training then reads ``.npz`` files instead of rendering. Going scene by scene builds each
    world once for all its frames (shuffled training builds one per sample), and ``workers``
    processes share the scenes. Frames already in the cache are kept.

    Args:
        dataset: a data set with ``cache_dir`` set.
        workers: worker processes.
        offsets: path-frame offsets to store per slot (``(0,)``; a sequence data set also
            needs its neighbours, e.g. ``(-1, 0, 1)``).

    Returns:
        ``frames``, ``seconds`` and ``bytes`` (size of the cache directory afterwards).

    Raises:
        ValueError: the data set has no ``cache_dir`` or ``workers`` < 1.
    """
    import time

    if dataset.cache_dir is None:
        raise ValueError("prerender needs a data set with cache_dir set")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    kwargs = {
        "family": dataset.family,
        "split": dataset.split,
        "width": dataset.width,
        "height": dataset.height,
        "frames_per_scene": dataset.frames_per_scene,
        "seed": dataset.seed,
        "cache_dir": dataset.cache_dir,
        "hfov_deg": dataset.hfov_deg,
        "domain": dataset.domain,
        # Without it a mixed set's default-world scenes would be rendered randomised, under
        # paths the training set never reads.
        "default_fraction": dataset.default_fraction,
    }
    scenes = list(range(*dataset.scene_range))
    chunks = [scenes[i::workers] for i in range(workers) if scenes[i::workers]]
    jobs = [(kwargs, chunk, tuple(int(o) for o in offsets)) for chunk in chunks]
    start = time.perf_counter()
    if workers == 1:
        frames = sum(_prerender_scenes(job) for job in jobs)
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            frames = sum(pool.map(_prerender_scenes, jobs))
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in Path(dataset.cache_dir).rglob("*.npz"))
    return {"frames": float(frames), "seconds": seconds, "bytes": float(size)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.data.synthetic``: pre-render a synthetic split to a cache."""
    import argparse

    parser = argparse.ArgumentParser(description="Pre-render synthetic frames to .npz files")
    parser.add_argument("--cache-dir", required=True, help="data.options.cache_dir to fill")
    parser.add_argument("--family", default="indoor")
    parser.add_argument("--domain", default="default")
    parser.add_argument("--split", default="train")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--frames-per-scene", type=int, default=8)
    parser.add_argument("--num-scenes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hfov-deg", type=float, default=70.0)
    parser.add_argument("--offsets", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--default-fraction",
        type=float,
        default=0.0,
        help="randomized only: share of scenes from the default world (data.options)",
    )
    args = parser.parse_args(argv)
    dataset = SyntheticDataset(
        args.family, args.split, args.width, args.height, args.frames_per_scene, args.seed,
        args.cache_dir, args.num_scenes, args.hfov_deg, domain=args.domain,
        default_fraction=args.default_fraction,
    )  # fmt: skip
    res = prerender(dataset, args.workers, args.offsets)
    print(
        f"{res['frames']:.0f} frames in {res['seconds']:.1f} s "
        f"({res['frames'] / max(res['seconds'], 1e-9):.1f} frames/s, {args.workers} workers); "
        f"cache {res['bytes'] / 1e6:.1f} MB ({res['bytes'] / max(res['frames'], 1) / 1e3:.0f} "
        f"kB per frame) in {args.cache_dir}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
