/* lsw_dtype — element types of safetensors checkpoints.
 *
 * Names are the safetensors spellings ("BF16").  Only BF16, F16 and F32 take
 * part in arithmetic (docs/numerics.md); every other known type can only be copied.
 */
#ifndef LSW_DTYPE_H
#define LSW_DTYPE_H

#include <stddef.h>

typedef enum lsw_dtype {
    LSW_DT_INVALID = 0,
    LSW_DT_BOOL, LSW_DT_U8, LSW_DT_I8, LSW_DT_F8_E5M2, LSW_DT_F8_E4M3, LSW_DT_F8_E8M0,
    LSW_DT_I16, LSW_DT_U16, LSW_DT_F16, LSW_DT_BF16,
    LSW_DT_I32, LSW_DT_U32, LSW_DT_F32,
    LSW_DT_I64, LSW_DT_U64, LSW_DT_F64, LSW_DT_C64,
    LSW_DT_COUNT
} lsw_dtype;

/* dtype from its safetensors name (exact, case-sensitive, `len` bytes); LSW_DT_INVALID if unknown. */
lsw_dtype lsw_dtype_from_name(const char *name, size_t len);
/* safetensors name ("BF16"); "INVALID" for an unknown value. */
const char *lsw_dtype_name(lsw_dtype dt);
/* Bytes per element (0 for LSW_DT_INVALID). */
size_t lsw_dtype_size(lsw_dtype dt);
/* 1 for BF16, F16, F32: the types that can be averaged. */
int lsw_dtype_is_arith(lsw_dtype dt);
/* Config spelling ("bfloat16", "float16", "float32") → dtype; LSW_DT_INVALID otherwise. */
lsw_dtype lsw_dtype_from_torch_name(const char *name);
/* torch spelling of an arithmetic dtype ("bfloat16"); NULL for others. */
const char *lsw_dtype_torch_name(lsw_dtype dt);

#endif
