"""Lists of constant tensors kept as one flat buffer (TorchScript modules have no dynamic attribute names).

flat = cat([t.reshape(-1) for t in tensors]);  unflatten(flat, shapes) -> views of the tensors
"""

from typing import List

import torch


def unflatten(flat: torch.Tensor, shapes: List[List[int]]) -> List[torch.Tensor]:
    out: List[torch.Tensor] = []
    offset = 0
    for shape in shapes:
        n = 1
        for s in shape:
            n *= s
        out.append(flat.narrow(0, offset, n).view(shape))
        offset += n
    return out
