"""Skip corrupt samples instead of failing a whole training run, and report them.

``SkipCorrupt(dataset)[i]`` returns ``dataset[i]``; when that raises, the failure is logged
(path and error), recorded in :attr:`SkipCorrupt.failures`, and the next index is tried. The
replacement sample carries ``meta["skipped"] = [(path, error), ...]``, which
:func:`training.data.sample.collate` gathers into ``batch["skipped"]``: that way the main
process learns about failures that happened inside DataLoader worker processes (whose own
``failures`` dicts it cannot see).
"""

from __future__ import annotations

import logging
from typing import Any

from torch.utils.data import Dataset

from training.data.sample import Sample

log = logging.getLogger(__name__)


class SkipCorrupt(Dataset):
    """Wrap a data set so that an unreadable sample is replaced by the next readable one.

    Args:
        dataset: any data set of :class:`Sample`; ``path_of(index)`` is used for reports
            when it has one.
        max_consecutive: give up (RuntimeError) after this many failures in a row: then the
            data set itself is broken (wrong root, missing archive), not a single sample.

    Attributes:
        failures: ``{index: (path, error)}`` of the failures seen in this process.
    """

    def __init__(self, dataset: Any, max_consecutive: int = 16) -> None:
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.dataset = dataset
        self.max_consecutive = int(max_consecutive)
        self.failures: dict[int, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        # class_names, name, ... of the wrapped data set; __getattr__ only runs for misses
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _path(self, index: int, err: BaseException) -> str:
        path = getattr(err, "path", None)
        if path is None and hasattr(self.dataset, "path_of"):
            try:
                path = self.dataset.path_of(index)
            except Exception:  # the report must not raise on a broken index
                path = None
        return str(path) if path is not None else f"index {index}"

    def __getitem__(self, index: int) -> Sample:
        n = len(self.dataset)
        skipped: list[tuple[str, str]] = []
        for attempt in range(self.max_consecutive):
            i = (index + attempt) % n
            try:
                sample = self.dataset[i]
            except Exception as err:  # any failure of one sample is that sample's problem
                path = self._path(i, err)
                message = f"{type(err).__name__}: {err}"
                self.failures[i] = (path, message)
                skipped.append((path, message))
                log.warning(
                    "skipping corrupt sample %d (%s): %s [%d skipped so far in this process]",
                    i,
                    path,
                    message,
                    len(self.failures),
                )
                continue
            if skipped:
                sample.meta["skipped"] = list(sample.meta.get("skipped", [])) + skipped
            return sample
        raise RuntimeError(
            f"{self.max_consecutive} consecutive samples from index {index} failed to load "
            f"(last: {skipped[-1][0]}: {skipped[-1][1]}); the data set looks broken, check its "
            "root directory and files"
        )

    def report(self) -> str:
        """One line per failure seen in this process, preceded by the count."""
        lines = [f"{len(self.failures)} corrupt sample(s) skipped"]
        lines += [f"  [{i}] {p}: {e}" for i, (p, e) in sorted(self.failures.items())]
        return "\n".join(lines)
