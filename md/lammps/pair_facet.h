// pair_style facet: the Facet machine-learning potential (facetpot) in LAMMPS.
//
// Loads a TorchScript model written by `facet export`. Local atoms receive messages from
// neighbours within the model cutoff (local or ghost); between layers the features of ghost
// atoms are copied from their owners (forward communication) and in the backward pass the
// feature gradients of ghost atoms are summed into their owners (reverse communication), so
// the ghost shell is one cutoff deep on any number of MPI ranks and no atom is computed twice.
// Forces, the virial and per-atom virials come from the pair gradients dE/dr_ij.
#ifndef LMP_PAIR_FACET_H
#define LMP_PAIR_FACET_H

#include "pair.h"

#include <torch/script.h>

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairFacet : public Pair {
 public:
  explicit PairFacet(class LAMMPS *);
  ~PairFacet() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  void finish() override;
  double init_one(int, int) override;
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 protected:
  void allocate();
  void load_model(const std::string &path);
  // the steps of compute()
  void build_edges();
  void model_inputs(torch::Tensor &species, torch::Tensor &edge_vec, const std::vector<int64_t> &senders);
  bool one_domain();
  void evaluate(bool whole, const torch::Tensor &species, const torch::Tensor &edge_vec, torch::Tensor &energies,
                torch::Tensor &grad);
  void run_domain(const torch::Tensor &species, const torch::Tensor &edge_vec, torch::Tensor &energies,
                  torch::Tensor &grad);
  void run_model(const torch::Tensor &species, const torch::Tensor &edge_vec, torch::Tensor &energies,
                 torch::Tensor &grad);
  // one model evaluation's layer-by-layer state, from forward_layers() to backward_layers()
  struct LayerPass {
    std::vector<torch::Tensor> graph;           // edge_basis outputs
    std::vector<torch::Tensor> basis_leaves;    // leaf copies a gradient is taken for, of graph[which[k]]
    std::vector<int> which;
    std::vector<torch::Tensor> inputs, outputs;    // every layer's input and output features
  };
  torch::Tensor forward_layers(const torch::Tensor &species, LayerPass &pass);
  std::vector<torch::Tensor> backward_layers(const torch::Tensor &energies, LayerPass &pass);
  void exchange_only();
  void accumulate(const torch::Tensor &energies, const torch::Tensor &grad);
  torch::Tensor run_layer(int t, const torch::Tensor &h_in);
  // layer t keeps its input only and runs again in the backward pass (never the last layer)
  bool recomputed(int t) const { return recompute && t + 1 < num_layers; }
  torch::Tensor exchange(const torch::Tensor &rows, bool reverse);

  torch::jit::script::Module module;
  bool loaded = false;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat64;
  std::string device_name = "cpu";
  int num_threads = 0;
  bool recompute = false;             // layers run again in the backward pass: one layer graph at a time
  bool engine = true;                 // one rank: the whole model in one call where the archive can (one_domain)
  bool has_domain = false;            // the archive has the ``domain`` method (a CPU export with the C++ engine)
  double cutoff = 0.0;
  int num_layers = 0;
  std::vector<int> model_species;     // atomic numbers, in model order
  std::vector<int64_t> type_species;  // LAMMPS type (1..ntypes) -> model species index
  std::vector<int64_t> feature_dims;  // widths of the features exchanged between layers
  // edges i <- j of this step (i local, j local or ghost), kept from build_edges() to accumulate()
  std::vector<int64_t> edge_recv, edge_send;
  std::vector<int64_t> edge_owner;    // the local atom each sender is an image of (one_domain)
  std::vector<double> edge_r;         // r_ij = x_j - x_i, 3 per edge
  // what every layer takes, held from model_inputs() to the end of run_model()
  torch::Tensor edge_index;           // (2, edges): receivers, senders
  c10::List<torch::Tensor> basis;     // leaf copies of the edge basis
  double *comm_data = nullptr;        // (nall, comm_width) rows the pack/unpack methods use
  int comm_width = 0;
  // wall-time breakdown of compute() since the last init (printed by finish())
  double time_total = 0.0, time_model = 0.0, time_comm = 0.0;
  bigint calls = 0, engine_calls = 0;
};

}    // namespace LAMMPS_NS

#endif
