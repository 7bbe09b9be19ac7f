"""Efficiency benchmarks behind `make bench` (`python -m src.bench`).

configs: the paper configurations measured; timing: clocks, memory and machine state;
inference: latency, throughput, memory, FLOPs and ONNX of one configuration (run in a fresh
process per configuration); training: LightningModule step vs a plain PyTorch loop; data: loader
throughput; gpu: bf16 / channels_last / torch.compile options; report: the Markdown summary.
"""
