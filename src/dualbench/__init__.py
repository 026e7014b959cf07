"""dualbench: benchmark two Llama 3.2 models side by side on Ascend NPUs, CUDA GPUs or the CPU."""

__version__ = "0.1.0"
