"""Model training with PyTorch; the only package in eyescreen that imports torch.

Install its dependencies with `pip install "eyescreen[train]" torch==2.13.0`.
"""
