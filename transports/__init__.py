"""Transport plugins: losses between the K high-end and K low-end class embeddings.

``fgw``, ``wasserstein``, ``gw`` (:mod:`kmat.transports.fgw`): kmat's own entropic fused Gromov-Wasserstein,
Wasserstein and Gromov-Wasserstein solvers in torch. ``pot-fgw``, ``pot-wasserstein``, ``pot-gw``
(:mod:`kmat.transports.pot_reference`): the same problems solved by POT, for reference and comparison.
Modules: :mod:`~kmat.transports.costs` (ground costs), :mod:`~kmat.transports.sinkhorn` (log-domain entropic OT),
:mod:`~kmat.transports.gromov` (the FGW fixed point and value), :mod:`~kmat.transports.checks` (argument checks
and failure reporting).
"""
