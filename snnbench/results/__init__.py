"""snnbench.results"""
