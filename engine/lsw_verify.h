/* lsw_verify — `layerswap verify DIR`: is an output folder complete and
 * intact?
 *
 * The folder's manifest (lsw_manifest) must be there and well formed; every
 * file it lists must be there with its size and CRC-32C (read in 4 MiB
 * blocks, so memory stays bounded); no weight file it does not list may sit
 * beside them (transformers would load it as part of the model); and, unless
 * the manifest says the folder holds statistics ("layerswap stats"), the
 * folder must open as a valid checkpoint whose index lists every tensor of
 * its shards and whose config.json is JSON.  No MPI.
 */
#ifndef LSW_VERIFY_H
#define LSW_VERIFY_H

#include <stdio.h>

/* 0 if DIR passes; else LSW_E_VERIFY (or LSW_E_NOTFOUND: no such folder)
 * with the first problem as detail.  With `report` non-NULL, one line per
 * file: "NAME<TAB>ok" or "NAME<TAB>PROBLEM". */
int lsw_verify_dir(const char *dir, FILE *report);

#endif
