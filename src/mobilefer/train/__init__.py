"""Training: needs the ``[train]`` extra (torch, torchvision, onnx, matplotlib).

Nothing in the inference half imports this package.
"""
