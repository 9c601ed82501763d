"""snnbench.report"""
