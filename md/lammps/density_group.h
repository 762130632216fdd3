// facetpot::density_group_messages: the frozen-weight density convolution of a group of input blocks
// (density_group_op.cpp), for other C++ code of the package (frozen_program_op.cpp) to call directly, whatever
// version of the operator schema the process registered first.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace facetpot {
// messages (N_recv, u_b, cols_b) of every block; an autograd Function with a hand-written backward (and a double
// backward through the plain formulation); ms: one M_b (u, m1 R, cols) per block
std::vector<at::Tensor> density_group_messages(const at::Tensor &src, const at::Tensor &rb, int64_t chunk,
                                               at::TensorList blocks, at::TensorList ms);

// the same without autograd: the messages, and the chunk table the backward needs (empty for factored groups). couplings: per block, undefined
// (ms[b] is M_b) or the coupling table of a factored form (ms[b] is W_b (u, P, R); density_group_op.cpp, Coupling)
std::vector<at::Tensor> density_group_forward(const at::Tensor &src, const at::Tensor &rb, int64_t chunk,
                                              at::TensorList blocks, at::TensorList ms, at::TensorList couplings,
                                              std::vector<int64_t> &chunks);

// the forward of a group of factored blocks edge first (density_group_op.cpp, EdgeKernel), where every slot of src
// holds one edge: rad (N_recv, n_slot, K) its mixed radial basis, sh (N_recv, n_slot, d') the group's harmonics; the
// same messages as density_group_forward
std::vector<at::Tensor> density_group_edge_forward(const at::Tensor &src, const at::Tensor &rad, const at::Tensor &sh,
                                                   at::TensorList blocks, at::TensorList ms, at::TensorList couplings);

// its backward: [g rad, g sh, g block_0, ...] from the messages' gradients grads (one per block, all defined)
std::vector<at::Tensor> density_group_edge_backward(const at::Tensor &src, const at::Tensor &rad, const at::Tensor &sh,
                                                    at::TensorList blocks, at::TensorList ms, at::TensorList couplings,
                                                    const std::vector<at::Tensor> &grads);

// [g rb (or undefined unless need_rb), g block_0, ... (undefined unless need_x)] from the messages' gradients grads
// (one per block, all defined)
std::vector<at::Tensor> density_group_backward(const at::Tensor &src, const at::Tensor &rb, int64_t chunk,
                                               const std::vector<int64_t> &chunks, const std::vector<at::Tensor> &blocks,
                                               const std::vector<at::Tensor> &ms, at::TensorList couplings,
                                               const std::vector<at::Tensor> &grads, bool need_rb, bool need_x);

// M_b (u, rows R, cols) of a factored form W_b (u, P, R) and its coupling table
at::Tensor factored_matrix(const at::Tensor &w, const at::Tensor &coupling);
}    // namespace facetpot
