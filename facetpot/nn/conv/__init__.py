"""Convolution backends: one sum, several formulations, siblings behind one base.

    m_i^(l3) = sum_{j in N(i)} sum_{paths} w_p(r_ij) (x_j^(l1) (x) Y^(l2)(r_ij))^(l3)     (``nn/convolution``)

``backend`` (``ConvolutionBackend``, the base), ``edgewise`` (the reference: one tensor product per edge),
``density`` (the CPU default: per-atom densities of the radial x angular basis, dense GEMMs; its frozen-weight
Function in ``density_op``), ``triton`` (fused GPU kernels in ``triton_kernels``), ``cueq`` (cuEquivariance's
segmented tensor products). ``nn/convolution.BACKENDS`` registers them by name.
"""
