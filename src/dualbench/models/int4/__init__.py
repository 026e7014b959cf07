"""INT4 weight-only linear layers: the artifact on disk, read back, run on native kernels.

The artifact is a compressed-tensors ``pack-quantized`` W4A16 checkpoint (the format vLLM and
vllm-ascend load): each quantised ``nn.Linear`` is stored as ``weight_packed`` (int32, eight
4-bit values per word along the input dimension, offset by +8), ``weight_scale`` (one per
group of ``group_size`` input columns, in the 16-bit dtype), ``weight_zero_point`` (packed the
same way along the output dimension; absent when symmetric) and ``weight_shape``, with the
matching ``quantization_config`` in config.json. compressed-tensors itself quantises and packs
(``quantize_model``), so our files are its files; ``read_int4_weights`` reads them back with
plain file reads (its import alone takes seconds), and the tests check the result against
compressed-tensors' own unpacking.

One formula, for output row n, input column k in group g = k // group_size:

    w[n, k] = (q[n, k] - zp[n, g]) * scale[n, g]      q, zp in [-8, 7]; zp = 0 when symmetric

Every kernel computes ``x @ w.T`` for that w. They differ only in how they hold q, scale and zp,
and all of them are built at load time from the unpacked artifact: loading never quantises.

Modules (the package imports none of them: import the one you need):
- artifact: writing the artifact (quantization_config, quantize_model) and reading it back
  (read_scheme, read_int4_weights -> Int4Checkpoint of Int4Weight), the nibble unpacking, and
  ACTIVATION_DTYPE, the 16-bit dtype of the artifact and of every kernel's activations;
- kernels: Kernel and its four implementations (reference, CPU, CUDA, NPU), with each one's
  limits checked before any op is called, and kernel_for, which picks one (KERNEL_CHOICES);
- loader: Int4Linear and load_int4_model, the model a worker runs.
Dependencies go one way: loader -> kernels -> artifact -> dualbench.models.safetensors_file.
"""
