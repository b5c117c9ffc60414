# Spack package for layerswap.  Use it from this repository of one package:
#   spack repo add packaging/spack
#   spack develop --path $PWD layerswap@0.1.0      # build this checkout
#   spack add layerswap@0.1.0 hdf5=parallel ^openmpi && spack install
# layerswap has no public release tarball yet: a site that mirrors it adds
# `url`/`git` and checksummed versions below, then `spack install layerswap`.
#
# Variants:
#   hdf5=parallel|serial|none   HDF5 output/input and the filter plugin, with a
#                               parallel (default) or serial HDF5, or none
#   mpi=any|openmpi|mpich|...   pin the MPI provider (`^openmpi` works as well)
#   native                      -march=native (results stay bit-identical)
#   man                         generate and install the man page
# The module Spack generates for it sets PATH, MANPATH, HDF5_PLUGIN_PATH,
# LAYERSWAP_SLURM_DIR and XDG_DATA_DIRS (bash completion): setup_run_environment.

from spack.package import *

try:  # Spack >= 1.0 keeps the build systems in its builtin repository
    from spack_repo.builtin.build_systems.cmake import CMakePackage  # noqa: F811
except ImportError:  # Spack 0.x: spack.package exports them
    pass

MPI_PROVIDERS = ("openmpi", "mpich", "mvapich2", "intel-oneapi-mpi", "cray-mpich")


class Layerswap(CMakePackage):
    """Merges large language model checkpoints (layer swapping, model soups,
    task arithmetic, TIES, DARE) exactly and out of core, alone or under
    MPI, with the same output bytes for any number of ranks."""

    homepage = "https://arxiv.org/abs/2410.01335"  # the method's paper (no project page yet)

    version("0.1.0")

    variant("hdf5", default="parallel", values=("parallel", "serial", "none"), multi=False,
            description="HDF5 output and input (model.h5) and the filter plugin")
    variant("mpi", default="any", values=("any",) + MPI_PROVIDERS, multi=False,
            description="MPI provider (any: Spack's choice; ^provider also works)")
    variant("native", default=False, description="Tune for the build machine (-march=native)")
    variant("man", default=True, description="Generate and install the man page")

    depends_on("c", type="build")  # the C compiler (Spack >= 0.22 declares it as a dependency)
    depends_on("cmake@3.18:", type="build")
    depends_on("pkgconfig", type="build")
    depends_on("mpi")
    for _provider in MPI_PROVIDERS:
        depends_on(_provider, when="mpi=" + _provider)
    depends_on("zstd")
    depends_on("cjson")
    depends_on("hdf5@1.10:+mpi", when="hdf5=parallel")
    depends_on("hdf5@1.10:~mpi", when="hdf5=serial")

    # The filter plugin's folder, fixed so that the run environment can name it
    # whatever libdir GNUInstallDirs would choose (lib or lib64).
    plugin_dir = "lib/hdf5/plugins"

    def cmake_args(self):
        hdf5 = self.spec.variants["hdf5"].value
        return [
            self.define("LSW_WITH_HDF5", hdf5 != "none"),
            self.define("LSW_REQUIRE_PARALLEL_HDF5", hdf5 == "parallel"),
            self.define("LSW_INSTALL_PLUGINDIR", self.plugin_dir),
            self.define("LSW_BUILD_TESTS", self.run_tests),
            self.define_from_variant("LSW_NATIVE", "native"),
            self.define_from_variant("LSW_BUILD_MAN", "man"),
        ]

    def setup_run_environment(self, env):
        if self.spec.variants["hdf5"].value != "none":
            env.prepend_path("HDF5_PLUGIN_PATH", join_path(self.prefix, self.plugin_dir))
        env.set("LAYERSWAP_SLURM_DIR", join_path(self.prefix, "share", "layerswap", "slurm"))
        # bash-completion finds share/bash-completion/completions/layerswap through it
        env.prepend_path("XDG_DATA_DIRS", join_path(self.prefix, "share"))

    def test_version(self):
        """layerswap --version names this version"""
        exe = which(join_path(self.prefix.bin, "layerswap"))
        out = exe("--version", output=str.split, error=str.split)
        assert str(self.spec.version) in out

    def test_demo(self):
        """layerswap demo merges, verifies and writes statistics"""
        exe = which(join_path(self.prefix.bin, "layerswap"))
        exe("demo", "layerswap-demo")
