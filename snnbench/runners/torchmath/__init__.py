"""PyTorch neuron math shared by the torch runners (imported lazily: torch is optional)."""
