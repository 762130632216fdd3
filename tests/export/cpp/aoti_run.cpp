// Loads a facetpot AOTInductor package from C++ and runs it on raw input files (tests/export/test_export.py).
//   aoti_run PACKAGE.pt2 N E DIR   reads DIR/{species,edge_index}.i64 and DIR/edge_vec.f64,
//   writes DIR/energies.f64 and DIR/edge_grad.f64 and prints the package's metadata.
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

static at::Tensor read(const std::string &path, at::IntArrayRef shape, at::ScalarType type)
{
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  std::ifstream in(path, std::ios::binary);
  in.read(static_cast<char *>(t.data_ptr()), t.nbytes());
  if (!in) throw std::runtime_error("cannot read " + path);
  return t;
}

static void write(const std::string &path, const at::Tensor &t)
{
  at::Tensor c = t.contiguous().to(at::kDouble);
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char *>(c.data_ptr()), c.nbytes());
}

int main(int argc, char **argv)
{
  if (argc != 5) {
    std::cerr << "usage: aoti_run PACKAGE.pt2 N E DIR\n";
    return 2;
  }
  const int64_t n = std::stoll(argv[2]), e = std::stoll(argv[3]);
  const std::string dir = argv[4];
  torch::inductor::AOTIModelPackageLoader loader(argv[1]);
  for (const auto &kv : loader.get_metadata())
    if (kv.first.rfind("facetpot_", 0) == 0) std::cout << kv.first << "=" << kv.second << "\n";
  std::vector<at::Tensor> inputs = {read(dir + "/species.i64", {n}, at::kLong),
                                    read(dir + "/edge_index.i64", {2, e}, at::kLong),
                                    read(dir + "/edge_vec.f64", {e, 3}, at::kDouble)};
  std::vector<at::Tensor> out = loader.run(inputs);
  write(dir + "/energies.f64", out[0]);
  write(dir + "/edge_grad.f64", out[1]);
  std::cout << "ok " << out[0].size(0) << " " << out[1].size(0) << "\n";
  return 0;
}
