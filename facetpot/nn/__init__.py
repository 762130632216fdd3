"""Building blocks of the Facet model, in data-flow order.

radial basis (`spline_radial`) and edge directions (`spherical_harmonics`) ->
equivariant linear maps (`irreps_linear`) -> convolution (`convolution`) ->
nonlinearities (`gate`, `s2_grid_mixing` over `s2_grid`) -> `interaction` block.
"""
