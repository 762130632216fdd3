// pair_style facet: see pair_facet.h.
#include "pair_facet.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "platform.h"
#include "update.h"
#include "utils.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <ATen/Parallel.h>

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

using namespace LAMMPS_NS;

namespace {

const char *const ELEMENTS[] = {
    "X",  "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",  "S",
    "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho",
    "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po",
    "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md",
    "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
const int NUM_ELEMENTS = 118;

int atomic_number(const std::string &symbol)
{
  for (int z = 1; z <= NUM_ELEMENTS; z++)
    if (symbol == ELEMENTS[z]) return z;
  return 0;
}

std::vector<std::string> split(const std::string &text)
{
  std::istringstream in(text);
  std::vector<std::string> out;
  std::string word;
  while (in >> word) out.push_back(word);
  return out;
}

std::string torch_message(const c10::Error &e)
{
  std::string m = e.what_without_backtrace();
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

// What a file that torch::jit::load refused is, when it is a torch.save archive rather than an export: a
// facetpot model file or training checkpoint (its pickle names its format) gets the command that makes an export
std::string not_an_export(const std::string &path)
{
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (reader.hasRecord("constants.pkl") || !reader.hasRecord("data.pkl")) return "";
    auto record = reader.getRecord("data.pkl");
    const std::string pickle(static_cast<const char *>(std::get<0>(record).get()), std::get<1>(record));
    const std::string how = ": write an export with `facet export " + path + " -o model-lammps.pt` and give that "
                            "file to pair_coeff";
    if (pickle.find("facetpot-model") != std::string::npos)
      return path + " is a facetpot model file, not an export" + how;
    if (pickle.find("facetpot-checkpoint") != std::string::npos)
      return path + " is a facetpot training checkpoint, not an export (its run folder's best.pt is the model file)" + how;
    return path + " is a torch.save archive, not a TorchScript export (write one with: facet export MODEL -o model.pt)";
  } catch (...) {
    return "";
  }
}

}    // namespace

PairFacet::PairFacet(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;    // the half/half split of pair virials is not a centroid form
  comm_forward = 0;
  comm_reverse = 0;
}

PairFacet::~PairFacet()
{
  if (copymode) return;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairFacet::allocate()
{
  allocated = 1;
  const int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  for (int i = 0; i <= n; i++)
    for (int j = 0; j <= n; j++) setflag[i][j] = 0;
}

// pair_style facet [device cpu|cuda] [threads N] [recompute yes|no] [engine yes|no]
void PairFacet::settings(int narg, char **arg)
{
  int iarg = 0;
  while (iarg < narg) {
    const std::string key = arg[iarg];
    if (iarg + 1 >= narg) error->all(FLERR, "pair_style facet: keyword " + key + " needs a value");
    const std::string value = arg[iarg + 1];
    if (key == "device") {
      if (value != "cpu" && value != "cuda")
        error->all(FLERR, "pair_style facet: device must be cpu or cuda, got " + value);
      if (value == "cuda" && !torch::cuda::is_available())
        error->all(FLERR, "pair_style facet: device cuda asked for, but this torch has no CUDA device");
      device_name = value;
      device = torch::Device(torch::kCPU);
      if (value == "cuda") {    // ranks of one node spread over its GPUs
        MPI_Comm node;
        int local_rank = 0;
        MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, comm->me, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_free(&node);
        device = torch::Device(torch::kCUDA, (c10::DeviceIndex) (local_rank % torch::cuda::device_count()));
        device_name = "cuda:" + std::to_string(device.index());
      }
      if (loaded) module.to(device);
    } else if (key == "recompute") {
      recompute = utils::logical(FLERR, value, false, lmp) == 1;
    } else if (key == "engine") {
      engine = utils::logical(FLERR, value, false, lmp) == 1;
    } else if (key == "threads") {
      num_threads = utils::inumeric(FLERR, value, false, lmp);
      if (num_threads < 1) error->all(FLERR, "pair_style facet: threads must be at least 1");
      at::set_num_threads(num_threads);
    } else {
      error->all(FLERR, "pair_style facet: unknown keyword " + key + " (known: device, threads, recompute, engine)");
    }
    iarg += 2;
  }
}

void PairFacet::load_model(const std::string &path)
{
  if (!std::ifstream(path).good())
    error->one(FLERR, "pair_style facet: model file " + path + " not found (write one with: facet export MODEL -o " + path + ")");
  std::unordered_map<std::string, std::string> extra{{"format", ""},     {"format_version", ""},
                                                    {"torch_version", ""}, {"cutoff", ""},
                                                    {"num_layers", ""},  {"species", ""},
                                                    {"dtype", ""},       {"feature_dims", ""},
                                                    {"facetpot_version", ""}};
  // the graph executor's shape profiling re-specialises whenever the atom or edge count changes
  // (every step in MD); plain interpretation of the scripted graph is faster here
  torch::jit::setGraphExecutorOptimize(std::getenv("FACET_JIT_OPTIMIZE") != nullptr);
  try {
    module = torch::jit::load(path, device, extra);
  } catch (const c10::Error &e) {
    const std::string what = not_an_export(path);
    if (!what.empty()) error->one(FLERR, "pair_style facet: " + what);
    error->one(FLERR, "pair_style facet: cannot read " + path + " as a TorchScript model: " + torch_message(e));
  } catch (const std::exception &e) {
    error->one(FLERR, "pair_style facet: cannot read " + path + ": " + std::string(e.what()));
  }
  if (extra["format"] != "facetpot-torchscript")
    error->all(FLERR, "pair_style facet: " + path + " is not a facetpot export (write one with: facet export MODEL -o model.pt)");
  if (extra["format_version"] != "1")
    error->all(FLERR, "pair_style facet: " + path + " has export format version " + extra["format_version"] +
                          " (facetpot " + extra["facetpot_version"] + "); this plugin reads version 1: export the model again");
  const std::string built = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR);
  const std::string saved = extra["torch_version"].substr(0, extra["torch_version"].rfind('.'));
  if (saved != built && comm->me == 0)
    error->warning(FLERR, "pair_style facet: " + path + " was exported with torch " + extra["torch_version"] +
                              ", this plugin runs torch " + built);
  module.eval();
  cutoff = std::stod(extra["cutoff"]);
  num_layers = std::stoi(extra["num_layers"]);
  dtype = extra["dtype"] == "float32" ? torch::kFloat32 : torch::kFloat64;
  model_species.clear();
  for (const auto &z : split(extra["species"])) model_species.push_back(std::stoi(z));
  feature_dims.clear();
  for (const auto &d : split(extra["feature_dims"])) feature_dims.push_back(std::stoll(d));
  int64_t width = 0;
  for (int t = 1; t < (int) feature_dims.size() - 1; t++) width = std::max(width, feature_dims[t]);
  comm_forward = comm_reverse = (int) width;
  has_domain = module.find_method("domain").has_value();
  loaded = true;
  if (comm->me == 0)
    utils::logmesg(lmp, "pair_style facet: " + path + ": cutoff " + extra["cutoff"] + " A, " + extra["num_layers"] +
                            " layers, " + extra["dtype"] + ", " + device_name + ", " +
                            std::to_string(at::get_num_threads()) + " torch thread(s)\n");
}

// pair_coeff * * model.pt El1 El2 ... (one element per LAMMPS atom type)
void PairFacet::coeff(int narg, char **arg)
{
  if (narg < 3 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for pair_style facet: expected pair_coeff * * model.pt El1 El2 ...");
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg - 3 != ntypes)
    error->all(FLERR, "pair_coeff * * model.pt needs one element per atom type: " + std::to_string(ntypes) +
                          " type(s), " + std::to_string(narg - 3) + " element(s) given");
  load_model(arg[2]);
  std::string known;
  for (int z : model_species) known += std::string(" ") + ELEMENTS[z];
  type_species.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const std::string symbol = arg[2 + t];
    const int z = atomic_number(symbol);
    if (z == 0) error->all(FLERR, "pair_coeff: " + symbol + " is not an element symbol");
    for (int k = 0; k < (int) model_species.size(); k++)
      if (model_species[k] == z) type_species[t] = k;
    if (type_species[t] < 0)
      error->all(FLERR, "pair_coeff: element " + symbol + " (type " + std::to_string(t) + ") is not covered by " +
                            std::string(arg[2]) + "; it knows:" + known);
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
}

void PairFacet::init_style()
{
  if (!loaded) error->all(FLERR, "pair_style facet: no model; give pair_coeff * * model.pt El1 El2 ...");
  if (force->newton_pair == 0) error->all(FLERR, "pair_style facet requires newton pair on");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style facet requires units metal (eV, Angstrom), got units " + std::string(update->unit_style));
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style facet requires atom IDs");
  if (atom->molecular != Atom::ATOMIC &&
      (force->special_lj[1] != 1.0 || force->special_lj[2] != 1.0 || force->special_lj[3] != 1.0))
    error->all(FLERR, "pair_style facet needs every neighbour: use special_bonds lj/coul 1.0 1.0 1.0 with bonds");
  neighbor->add_request(this, NeighConst::REQ_FULL);
  // As a sub-style of pair_style hybrid/overlay (e.g. with dispersion/d3), the communication buffers are
  // sized from the hybrid's comm_forward/comm_reverse, which the hybrid took from its sub-styles when
  // pair_style was read: before pair_coeff loaded the model and set ours. Comm::init() runs after this.
  if (force->pair != this) {
    force->pair->comm_forward = std::max(force->pair->comm_forward, comm_forward);
    force->pair->comm_reverse = std::max(force->pair->comm_reverse, comm_reverse);
  }
  time_total = time_model = time_comm = 0.0;
  calls = engine_calls = 0;
}

void PairFacet::finish()
{
  if (comm->me != 0 || calls == 0) return;
  const double other = time_total - time_model - time_comm;
  utils::logmesg(lmp, "pair_style facet, rank 0, " + std::to_string(calls) + " calls (" +
                          std::to_string(engine_calls) + " whole-domain calls of the C++ engine): model " +
                          std::to_string(1e3 * time_model / calls) + " ms/call, feature exchange " +
                          std::to_string(1e3 * time_comm / calls) + " ms/call, interface (edges, tensors, forces) " +
                          std::to_string(1e3 * other / calls) + " ms/call; overhead " +
                          std::to_string(100.0 * (time_comm + other) / std::max(time_model, 1e-30)) +
                          "% of model time\n");
}

double PairFacet::init_one(int, int)
{
  // ghost atoms one cutoff deep: their layer features come from their owners by communication
  return cutoff;
}

// Forward: the local rows in, every ghost row written by its owner, all rows out. Reverse: all
// rows in, the ghost rows added into their owners, the local rows out. The rows travel through
// a private double buffer either way: the pack/unpack methods work on doubles, and the reverse
// communication adds into it.
torch::Tensor PairFacet::exchange(const torch::Tensor &rows, bool reverse)
{
  const double start = platform::walltime();
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int rows_in = reverse ? nall : nlocal;
  const int64_t width = rows.size(1);
  torch::Tensor buffer = torch::empty({nall, width}, torch::TensorOptions().dtype(torch::kFloat64));
  if (rows_in > 0) buffer.narrow(0, 0, rows_in).copy_(rows.detach());
  comm_data = buffer.data_ptr<double>();
  comm_width = (int) width;
  if (reverse)
    comm->reverse_comm(this);
  else
    comm->forward_comm(this);
  comm_data = nullptr;
  buffer = buffer.narrow(0, 0, reverse ? nlocal : nall).to(device, dtype);
  time_comm += platform::walltime() - start;
  return buffer;
}

int PairFacet::pack_forward_comm(int n, int *list_, double *buf, int, int *)
{
  for (int k = 0; k < n; k++) std::memcpy(buf + (size_t) k * comm_width, comm_data + (size_t) list_[k] * comm_width, sizeof(double) * comm_width);
  return n * comm_width;
}

void PairFacet::unpack_forward_comm(int n, int first, double *buf)
{
  std::memcpy(comm_data + (size_t) first * comm_width, buf, sizeof(double) * comm_width * n);
}

int PairFacet::pack_reverse_comm(int n, int first, double *buf)
{
  std::memcpy(buf, comm_data + (size_t) first * comm_width, sizeof(double) * comm_width * n);
  return n * comm_width;
}

void PairFacet::unpack_reverse_comm(int n, int *list_, double *buf)
{
  for (int k = 0; k < n; k++) {
    double *row = comm_data + (size_t) list_[k] * comm_width;
    const double *in = buf + (size_t) k * comm_width;
    for (int d = 0; d < comm_width; d++) row[d] += in[d];
  }
}

void PairFacet::compute(int eflag, int vflag)
{
  const double start = platform::walltime();
  ev_init(eflag, vflag);
  calls++;
  build_edges();
  if (atom->nlocal == 0) {
    exchange_only();    // no model, but every communication the other ranks make
  } else {
    torch::Tensor species, edge_vec, energies, grad;
    const bool whole = one_domain();
    model_inputs(species, edge_vec, whole ? edge_owner : edge_send);
    const double model_start = platform::walltime();
    const double comm_before = time_comm;
    engine_calls += whole;
    evaluate(whole, species, edge_vec, energies, grad);
    time_model += platform::walltime() - model_start - (time_comm - comm_before);
    accumulate(energies, grad);
  }
  time_total += platform::walltime() - start;
}

// edges i <- j of the local receivers i from the full neighbour list, r_ij = x_j - x_i (j local or ghost)
void PairFacet::build_edges()
{
  double **x = atom->x;
  const double cut2 = cutoff * cutoff;
  edge_recv.clear();
  edge_send.clear();
  edge_r.clear();
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= cut2) continue;
      edge_recv.push_back(i);
      edge_send.push_back(j);
      edge_r.insert(edge_r.end(), {dx, dy, dz});
    }
  }
}

// the model's inputs on its device: edge_index (a member, every layer takes it) with the given senders, the
// species of all atoms, and r_ij as the leaf the pair gradients are taken for
void PairFacet::model_inputs(torch::Tensor &species, torch::Tensor &edge_vec, const std::vector<int64_t> &senders)
{
  const int nall = atom->nlocal + atom->nghost;
  const int64_t num_edges = (int64_t) edge_recv.size();
  const auto long_opts = torch::TensorOptions().dtype(torch::kInt64);
  edge_index = torch::empty({2, num_edges}, long_opts);
  if (num_edges > 0) {
    std::memcpy(edge_index[0].data_ptr<int64_t>(), edge_recv.data(), sizeof(int64_t) * num_edges);
    std::memcpy(edge_index[1].data_ptr<int64_t>(), senders.data(), sizeof(int64_t) * num_edges);
  }
  edge_index = edge_index.to(device);
  species = torch::empty({nall}, long_opts);
  int64_t *sp = species.data_ptr<int64_t>();
  for (int k = 0; k < nall; k++) sp[k] = type_species[atom->type[k]];
  species = species.to(device);
  edge_vec = torch::from_blob(edge_r.data(), {num_edges, 3}, torch::TensorOptions().dtype(torch::kFloat64))
                 .to(device, dtype, false, true)
                 .requires_grad_(true);
}

// Whether this step runs the whole model in one call of the C++ engine (the archive's ``domain`` method): one rank
// on the CPU, where every neighbour's owner is a local atom (edge_owner: each edge's sender mapped to it, so that
// the layers need no feature exchange); ``engine no`` and ``recompute yes`` keep the layer-by-layer pass.
bool PairFacet::one_domain()
{
  if (!engine || recompute || !has_domain || comm->nprocs != 1 || device.type() != torch::kCPU) return false;
  const int nlocal = atom->nlocal, nall = nlocal + atom->nghost;
  const tagint *tag = atom->tag;
  tagint max_tag = 0;
  for (int i = 0; i < nall; i++) max_tag = std::max(max_tag, tag[i]);
  std::vector<int> local_of(max_tag + 1, -1);    // atom ID -> local index (one rank: every ID is local)
  for (int i = 0; i < nlocal; i++) local_of[tag[i]] = i;
  edge_owner.resize(edge_send.size());
  for (size_t k = 0; k < edge_send.size(); k++) {
    const int owner = local_of[tag[edge_send[k]]];
    if (owner < 0) return false;
    edge_owner[k] = owner;
  }
  return true;
}

// E_i and g_ij = dE/dr_ij by the archive's ``domain`` method: the local atoms only, each edge's sender the local atom
// it is an image of (edge_index from edge_owner)
void PairFacet::run_domain(const torch::Tensor &species, const torch::Tensor &edge_vec, torch::Tensor &energies,
                           torch::Tensor &grad)
{
  auto out = module.run_method("domain", species, edge_index, edge_vec).toTuple();
  energies = out->elements()[0].toTensor();
  grad = out->elements()[1].toTensor();
}

// an empty subdomain runs no model but takes part in every exchange the other ranks make
void PairFacet::exchange_only()
{
  const int nall = atom->nlocal + atom->nghost;
  for (int t = 0; t + 1 < num_layers; t++) exchange(torch::zeros({0, feature_dims[t + 1]}), false);
  for (int t = num_layers - 1; t > 0; t--) exchange(torch::zeros({nall, feature_dims[t]}), true);
}

torch::Tensor PairFacet::run_layer(int t, const torch::Tensor &h_in)
{
  return module.run_method("layer", (int64_t) t, h_in, edge_index, basis, (int64_t) atom->nlocal).toTensor();
}

// E_i of the local atoms and g_ij = dE/dr_ij of every edge, as CPU doubles: the whole model in one call
// (run_domain) or layer by layer (run_model); a failure of the model is a LAMMPS error.
void PairFacet::evaluate(bool whole, const torch::Tensor &species, const torch::Tensor &edge_vec,
                         torch::Tensor &energies, torch::Tensor &grad)
{
  torch::autograd::AutoGradMode grad_mode(true);
  try {
    if (whole)
      run_domain(species.narrow(0, 0, atom->nlocal), edge_vec, energies, grad);
    else
      run_model(species, edge_vec, energies, grad);
  } catch (const c10::Error &e) {
    error->one(FLERR, "pair_style facet: model evaluation failed: " + torch_message(e));
  } catch (const std::exception &e) {
    error->one(FLERR, "pair_style facet: model evaluation failed: " + std::string(e.what()));
  }
  // the step's tensors are not kept between steps
  edge_index = torch::Tensor();
  basis = c10::List<torch::Tensor>();

  energies = energies.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  grad = grad.detach().to(torch::kCPU, torch::kFloat64).contiguous();
}

// Layer by layer forward (forward_layers), with the ghost features exchanged between layers; the backward pass
// (backward_layers) goes through the layers one at a time in reverse, with the ghost feature gradients summed into
// their owners in between, and ends with one pass through edge_basis.
void PairFacet::run_model(const torch::Tensor &species, const torch::Tensor &edge_vec, torch::Tensor &energies,
                          torch::Tensor &grad)
{
  LayerPass pass;
  pass.graph = module.run_method("edge_basis", edge_index, edge_vec, (int64_t) atom->nlocal,
                                 (int64_t) (atom->nlocal + atom->nghost)).toTensorVector();
  energies = forward_layers(species, pass);
  std::vector<torch::Tensor> basis_grad = backward_layers(energies, pass);
  std::vector<torch::Tensor> outs, grads;
  for (size_t k = 0; k < pass.graph.size(); k++)
    if (pass.graph[k].requires_grad() && basis_grad[k].defined()) {
      outs.push_back(pass.graph[k]);
      grads.push_back(basis_grad[k]);
    }
  grad = outs.empty() ? torch::zeros_like(edge_vec) : torch::autograd::grad(outs, {edge_vec}, grads, false, false, true)[0];
  if (!grad.defined()) grad = torch::zeros_like(edge_vec);
}

// The layers see leaf copies of the edge basis (``basis``; their gradients are collected, then sent
// through edge_basis once at the end); returns E_i of the local atoms, keeping every layer's input
// and output (a recomputed layer keeps its input only: it runs again in the backward pass).
torch::Tensor PairFacet::forward_layers(const torch::Tensor &species, LayerPass &pass)
{
  basis = c10::List<torch::Tensor>();
  for (size_t k = 0; k < pass.graph.size(); k++) {
    if (!pass.graph[k].requires_grad()) {
      basis.push_back(pass.graph[k]);
      continue;
    }
    basis.push_back(pass.graph[k].detach().requires_grad_(true));
    pass.basis_leaves.push_back(basis.get(k));
    pass.which.push_back((int) k);
  }
  torch::Tensor h = module.run_method("embed", species).toTensor().detach();
  for (int t = 0; t < num_layers; t++) {
    torch::Tensor h_in = h.detach().requires_grad_(t > 0);
    torch::autograd::AutoGradMode layer_grad(!recomputed(t));
    pass.inputs.push_back(h_in);
    pass.outputs.push_back(run_layer(t, h_in));
    if (t + 1 < num_layers) h = exchange(pass.outputs.back(), false);    // ghost features from their owners
  }
  return module.run_method("energies", pass.outputs.back(), species.narrow(0, 0, atom->nlocal)).toTensor();
}

// dE/d(edge basis) for every tensor of pass.graph (undefined where none flows), layer by layer in reverse.
std::vector<torch::Tensor> PairFacet::backward_layers(const torch::Tensor &energies, LayerPass &pass)
{
  // an output without a graph (a subdomain whose atoms have no neighbour, as the model may
  // then skip the messages) depends on nothing a gradient is taken for: its gradients are zero
  torch::Tensor grad_out = pass.outputs.back().requires_grad()
      ? torch::autograd::grad({energies.sum()}, {pass.outputs.back()}, {}, true)[0]
      : torch::zeros_like(pass.outputs.back());
  std::vector<torch::Tensor> basis_grad(pass.graph.size());
  for (int t = num_layers - 1; t >= 0; t--) {
    std::vector<torch::Tensor> wrt = pass.basis_leaves;
    if (t > 0) wrt.push_back(pass.inputs[t]);
    if (recomputed(t)) pass.outputs[t] = run_layer(t, pass.inputs[t]);
    std::vector<torch::Tensor> gs(wrt.size());
    if (pass.outputs[t].requires_grad())
      gs = torch::autograd::grad({pass.outputs[t]}, wrt, {grad_out}, false, false, true);
    pass.outputs[t] = torch::Tensor();    // frees this layer's graph
    for (size_t k = 0; k < pass.which.size(); k++) {
      const int b = pass.which[k];
      if (gs[k].defined()) basis_grad[b] = basis_grad[b].defined() ? basis_grad[b] + gs[k] : gs[k];
    }
    if (t > 0) {
      torch::Tensor g_in = gs.back().defined() ? gs.back() : torch::zeros_like(pass.inputs[t]);
      grad_out = exchange(g_in, true);    // ghost feature gradients summed into owners
    }
  }
  return basis_grad;
}

// energies, forces, and the global and per-atom virials from E_i and g_ij:
// F_i = sum g_ij (i receives) - sum g_ji, W = -sum r_ij (x) g_ij
void PairFacet::accumulate(const torch::Tensor &energies, const torch::Tensor &grad)
{
  const int nlocal = atom->nlocal;
  double **f = atom->f;
  const double *e = energies.data_ptr<double>();
  const double *g = grad.data_ptr<double>();
  if (eflag_global)
    for (int i = 0; i < nlocal; i++) eng_vdwl += e[i];
  if (eflag_atom)
    for (int i = 0; i < nlocal; i++) eatom[i] += e[i];
  for (size_t k = 0; k < edge_recv.size(); k++) {
    const int i = (int) edge_recv[k], j = (int) edge_send[k];
    const double *gk = g + 3 * k;
    const double *rk = edge_r.data() + 3 * k;
    for (int d = 0; d < 3; d++) {
      f[i][d] += gk[d];
      f[j][d] -= gk[d];
    }
    if (vflag_either) {
      // W = sum_atoms x (x) F = -sum_edges r_ij (x) dE/dr_ij; per atom, half to each end
      const double v[6] = {-rk[0] * gk[0], -rk[1] * gk[1], -rk[2] * gk[2],
                           -rk[0] * gk[1], -rk[0] * gk[2], -rk[1] * gk[2]};
      if (vflag_global)
        for (int d = 0; d < 6; d++) virial[d] += v[d];
      if (vflag_atom)
        for (int d = 0; d < 6; d++) {
          vatom[i][d] += 0.5 * v[d];
          vatom[j][d] += 0.5 * v[d];
        }
    }
  }
}
