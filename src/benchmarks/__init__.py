"""Efficiency benchmarks behind `make bench` (`python -m src.bench`).

configs: the paper configurations measured; timing: clocks, memory and machine state;
inference: latency, throughput, memory, FLOPs and ONNX of one configuration (run in a fresh
process per configuration); training: LightningModule step vs a plain PyTorch loop; data: loader
throughput; gpu: bf16 / channels_last / torch.compile options; report: the Markdown summary.
deployed: the exported models in ONNX Runtime (fp32, int8 from quantize.py) side by side, their
memory in a fresh process (ort_memory.py), int8's accuracy cost (int8_accuracy.py) and its
report (report_deployed.py); profile and ort_options: where the AAB's time goes in ONNX Runtime.
"""
