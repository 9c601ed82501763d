"""snnbench.harness"""
