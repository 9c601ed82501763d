"""Interoperability: snnbench networks as NIR graphs, and other frameworks' NIR readers and writers."""
