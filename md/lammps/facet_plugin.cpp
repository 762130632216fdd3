// Registers pair_style facet with LAMMPS when the plugin is loaded.
#include "lammpsplugin_abi.h"
#include "pair_facet.h"

#include "lammps.h"

using namespace LAMMPS_NS;

static Pair *facet_creator(LAMMPS *lmp)
{
  return new PairFacet(lmp);
}

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  static lammpsplugin_t plugin;
  plugin.version = LAMMPS_VERSION_STRING;
  plugin.style = "pair";
  plugin.name = "facet";
  plugin.info = "Facet machine-learning potential (facetpot), TorchScript";
  plugin.author = "facetpot developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &facet_creator;
  plugin.handle = handle;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);
}
