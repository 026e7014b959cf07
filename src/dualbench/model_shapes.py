"""Shapes of the synthetic Llama 3.2 models (plain data: the Snakefile reads it at parse time).

``llama-3.2-1b`` and ``llama-3.2-3b`` are the exact public shapes of meta-llama/Llama-3.2-1B
and -3B (config.json of those repositories); ``tiny``, ``small`` and ``mini`` keep the
architecture (GQA, llama3 rope scaling, tied embeddings, the 128256-token vocabulary) at sizes
for tests (tiny), the CPU default (small) and a heavier CPU run (mini).
"""

LLAMA_3_2_COMMON = {
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "attention_bias": False,
    "mlp_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
    },
}

SYNTHETIC_PRESETS = {
    "llama-3.2-tiny": {
        **LLAMA_3_2_COMMON,
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 32,
    },
    # The CPU default's model: the 1B's ratios (head_dim 64, four query heads per KV head, MLP
    # four times the hidden size) at a size whose 4096-token prefill takes seconds, not
    # minutes, on a 2-core CPU without native bf16 (see config/config.yaml).
    "llama-3.2-small": {
        **LLAMA_3_2_COMMON,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
    },
    "llama-3.2-mini": {
        **LLAMA_3_2_COMMON,
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 8,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "head_dim": 64,
    },
    "llama-3.2-1b": {
        **LLAMA_3_2_COMMON,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
    },
    "llama-3.2-3b": {
        **LLAMA_3_2_COMMON,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 28,
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
}

# Token ids >= this are Llama 3's special tokens; prompts for synthetic models stay below.
FIRST_SPECIAL_TOKEN_ID = 128000
