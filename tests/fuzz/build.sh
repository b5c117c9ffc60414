#!/bin/sh
# tests/fuzz/build.sh HARNESS — build a libFuzzer binary of one harness with clang
# (ASan + UBSan, no recovery) into build-fuzz/HARNESS, from the repository root:
#   sh tests/fuzz/build.sh fuzz_safetensors
#   build-fuzz/fuzz_safetensors -max_len=65536 -timeout=10 CORPUS_DIR tests/fuzz/seeds/safetensors
# Every library source is compiled once, instrumented, into build-fuzz/liblsw-fuzz.a.
set -e
h=${1:?usage: sh tests/fuzz/build.sh fuzz_NAME}
out=build-fuzz
mkdir -p "$out/obj"
CF="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DLSW_VERSION=\"fuzz\" -DLSW_HAVE_HDF5=1 -Iio -Iengine -Impi \
 $(mpicc -showme:compile) $(pkg-config --cflags hdf5-openmpi libzstd libcjson)"
for f in io/lsw_*.c engine/lsw_*.c mpi/lsw_*.c; do
  o=$out/obj/$(basename "$f" .c).o
  [ "$o" -nt "$f" ] || clang $CF -c "$f" -o "$o"
done
rm -f "$out/liblsw-fuzz.a"
ar rcs "$out/liblsw-fuzz.a" "$out"/obj/*.o
clang -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DLSW_HAVE_HDF5=1 -Iio -Iengine -Impi \
  $(mpicc -showme:compile) $(pkg-config --cflags hdf5-openmpi libzstd libcjson) \
  "tests/fuzz/$h.c" "$out/liblsw-fuzz.a" $(pkg-config --libs hdf5-openmpi libzstd libcjson) $(mpicc -showme:link) -lm \
  -o "$out/$h"
echo "built $out/$h"
