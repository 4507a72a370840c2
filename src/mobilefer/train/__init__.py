"""Training: needs the ``[train]`` extra (torch, torchvision, onnx, matplotlib).

The inference half never imports its torch modules; the recipes and their config
(:mod:`.recipes`, :mod:`.config`: plain data) are read by the CLI to list them.
"""
