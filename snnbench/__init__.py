"""snnbench: a benchmark and comparison suite for spiking-neural-network training frameworks.

Layers, one direction: data -> spec -> runners -> harness -> results -> report.
"""

__version__ = "0.1.0"
