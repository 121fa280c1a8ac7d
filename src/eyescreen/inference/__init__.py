"""ONNX Runtime inference; never imports torch."""
