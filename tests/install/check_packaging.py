#!/usr/bin/python3
"""check_packaging — the site recipes in packaging/ parse and say what they must.

usage: /usr/bin/python3 check_packaging.py SOURCE_DIR [PREFIX]

Neither Spack nor EasyBuild is installed here, so each recipe is run against a small
stand-in of the API it uses:
  spack      packaging/spack/packages/layerswap/package.py imported with a stub
             `spack.package` that records its directives: class Layerswap, a CMake
             package, version = the project's; variants hdf5 (parallel, serial, none)
             and mpi (providers); depends_on cmake, mpi, zstd, cjson, hdf5+mpi when
             hdf5=parallel and hdf5~mpi when hdf5=serial; cmake_args for every hdf5
             value give the matching LSW_WITH_HDF5 / LSW_REQUIRE_PARALLEL_HDF5 and a
             fixed LSW_INSTALL_PLUGINDIR; the run environment sets HDF5_PLUGIN_PATH to
             that folder, LAYERSWAP_SLURM_DIR and XDG_DATA_DIRS.
  easybuild  packaging/easybuild/*.eb executed as Python with EasyBuild's constants:
             the required keys, version = the project's, configopts fixing the plugin
             folder that modextrapaths puts on HDF5_PLUGIN_PATH, LAYERSWAP_SLURM_DIR;
             with PREFIX (an install made by `cmake --install`), every file and folder
             of sanity_check_paths exists there.
  lmod       packaging/lmod/layerswap.lua.in sets PATH, MANPATH, HDF5_PLUGIN_PATH and
             LAYERSWAP_SLURM_DIR; with PREFIX, the generated modulefile names PREFIX's
             folders and no @VARIABLE@ is left.
Exit 0 pass, 1 fail.
"""
import glob
import os
import re
import sys
import types

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def project_version(src):
    with open(os.path.join(src, "CMakeLists.txt")) as f:
        m = re.search(r"project\(layerswap VERSION ([0-9.]+)", f.read())
    return m.group(1) if m else None


# ---- Spack ------------------------------------------------------------------------------

class Variant:
    def __init__(self, value):
        self.value = value


class FakeSpec:
    def __init__(self, version, variants):
        self.version = version
        self.variants = {k: Variant(v) for k, v in variants.items()}


class FakeEnv:
    def __init__(self):
        self.calls = []

    def set(self, name, value):
        self.calls.append(("set", name, value))

    def prepend_path(self, name, value):
        self.calls.append(("prepend", name, value))

    def append_path(self, name, value):
        self.calls.append(("append", name, value))


def spack_stub(record):
    """A module standing in for spack.package: directives recorded in `record`."""
    m = types.ModuleType("spack.package")

    def directive(kind):
        def f(*args, **kw):
            record.append((kind, args, kw))
        return f

    class CMakePackage:
        run_tests = False

        def __init__(self, spec, prefix):
            self.spec, self.prefix = spec, prefix

        @staticmethod
        def define(name, value):
            if isinstance(value, bool):
                value = "ON" if value else "OFF"
            return "-D%s=%s" % (name, value)

        def define_from_variant(self, name, variant):
            return self.define(name, self.spec.variants[variant].value)

    for d in ("version", "variant", "depends_on", "conflicts", "maintainers", "license", "provides", "patch",
              "resource", "requires"):
        setattr(m, d, directive(d))
    m.CMakePackage = CMakePackage
    m.join_path = os.path.join
    m.which = lambda *a, **k: None
    m.__all__ = [n for n in dir(m) if not n.startswith("_")]
    return m


def check_spack(src, version):
    path = os.path.join(src, "packaging", "spack", "packages", "layerswap", "package.py")
    record = []
    spack = types.ModuleType("spack")
    spack.package = spack_stub(record)
    sys.modules["spack"], sys.modules["spack.package"] = spack, spack.package
    ns = {"__name__": "layerswap_package"}
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    exec(code, ns)
    cls = ns.get("Layerswap")
    if cls is None:
        fail("spack: package.py defines no class Layerswap")
        return
    if not issubclass(cls, spack.package.CMakePackage):
        fail("spack: Layerswap is not a CMakePackage")
    versions = [a[0] for k, a, kw in record if k == "version"]
    if version not in versions:
        fail("spack: versions %s lack the project's %s" % (versions, version))
    variants = {a[0]: kw for k, a, kw in record if k == "variant"}
    for name, values in (("hdf5", {"parallel", "serial", "none"}), ("mpi", {"any", "openmpi", "mpich"})):
        if name not in variants:
            fail("spack: no variant %s" % name)
        elif not values <= set(variants[name].get("values", ())):
            fail("spack: variant %s offers %s, expected at least %s" % (name, variants[name].get("values"), values))
    deps = [(a[0], kw.get("when")) for k, a, kw in record if k == "depends_on"]
    for want in (("mpi", None), ("zstd", None), ("cjson", None), ("hdf5@1.10:+mpi", "hdf5=parallel"),
                 ("hdf5@1.10:~mpi", "hdf5=serial"), ("openmpi", "mpi=openmpi"), ("mpich", "mpi=mpich")):
        if want not in deps:
            fail("spack: no depends_on(%r, when=%r)" % want)
    if not any(d.startswith("cmake@") for d, _ in deps):
        fail("spack: no depends_on cmake")
    prefix = "/spack/opt/layerswap"
    for hdf5, with_, par in (("parallel", "ON", "ON"), ("serial", "ON", "OFF"), ("none", "OFF", "OFF")):
        pkg = cls(FakeSpec(version, {"hdf5": hdf5, "mpi": "any", "native": False, "man": True}), prefix)
        args = pkg.cmake_args()
        for want in ("-DLSW_WITH_HDF5=" + with_, "-DLSW_REQUIRE_PARALLEL_HDF5=" + par,
                     "-DLSW_INSTALL_PLUGINDIR=lib/hdf5/plugins", "-DLSW_NATIVE=OFF", "-DLSW_BUILD_MAN=ON"):
            if want not in args:
                fail("spack: hdf5=%s: cmake_args %s lack %s" % (hdf5, args, want))
        env = FakeEnv()
        pkg.setup_run_environment(env)
        plug = ("prepend", "HDF5_PLUGIN_PATH", prefix + "/lib/hdf5/plugins")
        if (plug in env.calls) != (hdf5 != "none"):
            fail("spack: hdf5=%s: run environment %s %s HDF5_PLUGIN_PATH" % (hdf5, env.calls,
                 "lacks" if hdf5 != "none" else "sets"))
        for want in (("set", "LAYERSWAP_SLURM_DIR", prefix + "/share/layerswap/slurm"),
                     ("prepend", "XDG_DATA_DIRS", prefix + "/share")):
            if want not in env.calls:
                fail("spack: hdf5=%s: run environment %s lacks %s" % (hdf5, env.calls, want))
    print("spack: class Layerswap, %d directives, cmake_args and run environment checked" % len(record))


# ---- EasyBuild --------------------------------------------------------------------------

def check_easybuild(src, version, prefix):
    ebs = glob.glob(os.path.join(src, "packaging", "easybuild", "*.eb"))
    if not ebs:
        fail("easybuild: no packaging/easybuild/*.eb")
    for path in ebs:
        ns = {"SOURCELOWER_TAR_GZ": "%(namelower)s-%(version)s.tar.gz", "SOURCE_TAR_GZ": "%(name)s-%(version)s.tar.gz",
              "SHLIB_EXT": "so", "GITHUB_SOURCE": "https://github.com/%(github_account)s/%(name)s/archive"}
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        exec(code, ns)
        name = os.path.basename(path)
        for key in ("easyblock", "name", "version", "homepage", "description", "toolchain", "sources",
                    "dependencies", "sanity_check_paths", "moduleclass"):
            if key not in ns:
                fail("easybuild %s: no %s" % (name, key))
        if ns.get("easyblock") != "CMakeMake":
            fail("easybuild %s: easyblock is not CMakeMake" % name)
        if ns.get("version") != version:
            fail("easybuild %s: version %s, the project's is %s" % (name, ns.get("version"), version))
        if not name.startswith("layerswap-%s-" % version):
            fail("easybuild %s: the file name does not start with layerswap-%s-" % (name, version))
        deps = [d[0] for d in ns.get("dependencies", [])]
        for want in ("HDF5", "zstd", "cJSON"):
            if want not in deps:
                fail("easybuild %s: no %s dependency" % (name, want))
        if "-DLSW_INSTALL_PLUGINDIR=lib/hdf5/plugins" not in ns.get("configopts", ""):
            fail("easybuild %s: configopts do not fix LSW_INSTALL_PLUGINDIR=lib/hdf5/plugins" % name)
        if ns.get("modextrapaths", {}).get("HDF5_PLUGIN_PATH") != "lib/hdf5/plugins":
            fail("easybuild %s: modextrapaths does not put lib/hdf5/plugins on HDF5_PLUGIN_PATH" % name)
        if ns.get("modextrapaths", {}).get("XDG_DATA_DIRS") != "share":
            fail("easybuild %s: modextrapaths does not put share on XDG_DATA_DIRS" % name)
        if ns.get("modextravars", {}).get("LAYERSWAP_SLURM_DIR") != "%(installdir)s/share/layerswap/slurm":
            fail("easybuild %s: modextravars does not set LAYERSWAP_SLURM_DIR" % name)
        if prefix:
            sc = ns.get("sanity_check_paths", {})
            for f in sc.get("files", []):
                if not os.path.isfile(os.path.join(prefix, f)):
                    fail("easybuild %s: sanity_check_paths file %s is not what cmake --install makes" % (name, f))
            for d in sc.get("dirs", []):
                if not os.path.isdir(os.path.join(prefix, d)):
                    fail("easybuild %s: sanity_check_paths folder %s is not what cmake --install makes" % (name, d))
        print("easybuild: %s checked" % name)


# ---- Lmod -------------------------------------------------------------------------------

def check_lmod(src, version, prefix):
    with open(os.path.join(src, "packaging", "lmod", "layerswap.lua.in")) as f:
        tpl = f.read()
    for var in ("PATH", "MANPATH", "HDF5_PLUGIN_PATH", "LAYERSWAP_SLURM_DIR"):
        if not re.search(r'(prepend_path|setenv)\("%s",' % var, tpl):
            fail("lmod: the template does not set %s" % var)
    if prefix:
        mf = os.path.join(prefix, "share", "modulefiles", "layerswap", version + ".lua")
        if not os.path.isfile(mf):
            fail("lmod: %s was not installed" % mf)
            return
        with open(mf) as f:
            text = f.read()
        if "@" in re.sub(r"--.*", "", text):
            fail("lmod: %s keeps an @VARIABLE@" % mf)
        for want in ('"%s/bin"' % prefix, '"%s/share/man"' % prefix, '"%s/lib/hdf5/plugins"' % prefix,
                     '"%s/share/layerswap/slurm"' % prefix):
            if want not in text:
                fail("lmod: %s does not name %s" % (mf, want))
    print("lmod: template%s checked" % (" and the installed modulefile" if prefix else ""))


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 1
    src = os.path.abspath(sys.argv[1])
    prefix = os.path.abspath(sys.argv[2]) if len(sys.argv) == 3 else None
    version = project_version(src)
    if not version:
        fail("no project(layerswap VERSION ...) in CMakeLists.txt")
        return 1
    for name, check in (("spack", lambda: check_spack(src, version)),
                        ("easybuild", lambda: check_easybuild(src, version, prefix)),
                        ("lmod", lambda: check_lmod(src, version, prefix))):
        try:
            check()
        except Exception as e:  # a recipe that does not even run is a failure, not a crash
            fail("%s: %s: %r" % (name, type(e).__name__, e))
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
