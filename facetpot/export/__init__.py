"""Export a Facet model for deployment: TorchScript (LAMMPS, C++) and torch.export / AOTInductor."""
