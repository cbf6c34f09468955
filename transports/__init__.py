"""Transport plugins: losses between the K high-end and K low-end class embeddings.

``fgw``, ``wasserstein``, ``gw`` (:mod:`transports.fgw`): kmat's own entropic fused Gromov-Wasserstein,
Wasserstein and Gromov-Wasserstein solvers in torch. ``pot-fgw``, ``pot-wasserstein``, ``pot-gw``
(:mod:`transports.pot_reference`): the same problems solved by POT, for reference and comparison.
Modules: :mod:`~transports.costs` (ground costs), :mod:`~transports.sinkhorn` (log-domain entropic OT),
:mod:`~transports.gromov` (the FGW fixed point and value), :mod:`~transports.checks` (argument checks
and failure reporting).
"""
