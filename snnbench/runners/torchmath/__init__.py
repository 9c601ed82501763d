"""PyTorch neuron math shared by the torch runners: each module imports torch, so only runner methods import them."""
