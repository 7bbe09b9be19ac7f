"""The fused predictor of a checkpoint (TTA, Eq. 4 weights) and its ONNX export."""
