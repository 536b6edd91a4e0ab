"""Command-line tools over the training library (``depth-perception <command>``).

``train`` (``depth-perception train``), ``evaluate`` (``eval``), ``export``, ``teacher``,
``bundle`` and ``sfm_losses`` (``python -m training.tools.sfm_losses``); paper c's transfer study:
``pretrain_encoder``, ``transfer_study`` and ``train_cost`` (``python -m training.tools.<name>``);
``int8_study`` (what an int8 ONNX model costs in depth and saves in time);
``cli_args`` holds their argparse definitions (argparse only, so ``depth-perception --help`` stays
fast). The library
(``training.trainer``, ``training.evaluation``, ``training.data`` ...) never imports a tool.
"""
