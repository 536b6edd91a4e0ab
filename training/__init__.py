"""Offline training of the depth_perception models (no ROS needed).

* ``config``: recipes (``configs/*.yaml``) as typed dataclasses;
* ``data/``: the data sets and their one table (``data/registry.py``), augmentation,
  collation, teacher pseudo-labels;
* ``objectives/``: what one step minimises, per model family, and the losses they use
  (``objectives/losses.py``, ``objectives/gradient_losses.py``);
* ``trainer/``: the loop, the run directory and resuming, distributed set-up, optimiser and
  schedule, panels, benchmark;
* ``evaluation``: the papers' metrics over a data set;
* ``tools/``: the command lines (train, eval, export, teacher, bundle, held-out SfM losses).

``training`` imports the core (``depth_perception``), never the reverse.
"""
