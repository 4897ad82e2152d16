"""Isolation Forest training and its fast, exact ONNX export."""
