"""Network modules of the adapters, one module per framework: ``nn.Module`` / ``nnx.Module`` classes
that must subclass their framework's base class, so each of these files imports its framework at
the top. Only an adapter's methods import them (runner discovery never does), so a missing
framework still only makes its runner unavailable."""
