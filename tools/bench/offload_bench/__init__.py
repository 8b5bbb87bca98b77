"""offload-bench: side-by-side (kernel vs. offload) benchmark runner."""
