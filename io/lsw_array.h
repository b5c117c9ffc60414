/* lsw_array — room in a malloc'd array that grows by doubling.
 *
 * One rule for every growing list (parsed YAML and JSON nodes, config
 * edits, HDF5 datasets, the work assignment): the capacity starts at 16
 * elements and doubles until it holds `need`; the array moves with
 * realloc.  No error is recorded here: each caller says what ran out of
 * memory in its own words.  No state, thread-safe.
 */
#ifndef LSW_ARRAY_H
#define LSW_ARRAY_H

#include <stddef.h>

/* `parray` points at the array's pointer (any element type: T **), `cap` at
 * its capacity in elements.  Ensures room for `need` elements of `elem`
 * bytes.  Returns 0, or -1 when memory runs out or need * elem overflows,
 * leaving the array and *cap as they were. */
int lsw_array_reserve(void *parray, size_t *cap, size_t need, size_t elem);

#endif
