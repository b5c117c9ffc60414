#include "lsw_dtype.h"

#include <string.h>

static const struct { const char *name; size_t size; const char *torch; } table[LSW_DT_COUNT] = {
    [LSW_DT_INVALID] = {"INVALID", 0, NULL},
    [LSW_DT_BOOL] = {"BOOL", 1, NULL},     [LSW_DT_U8] = {"U8", 1, NULL},
    [LSW_DT_I8] = {"I8", 1, NULL},         [LSW_DT_F8_E5M2] = {"F8_E5M2", 1, NULL},
    [LSW_DT_F8_E4M3] = {"F8_E4M3", 1, NULL}, [LSW_DT_F8_E8M0] = {"F8_E8M0", 1, NULL},
    [LSW_DT_I16] = {"I16", 2, NULL},       [LSW_DT_U16] = {"U16", 2, NULL},
    [LSW_DT_F16] = {"F16", 2, "float16"},  [LSW_DT_BF16] = {"BF16", 2, "bfloat16"},
    [LSW_DT_I32] = {"I32", 4, NULL},       [LSW_DT_U32] = {"U32", 4, NULL},
    [LSW_DT_F32] = {"F32", 4, "float32"},  [LSW_DT_I64] = {"I64", 8, NULL},
    [LSW_DT_U64] = {"U64", 8, NULL},       [LSW_DT_F64] = {"F64", 8, NULL},
    [LSW_DT_C64] = {"C64", 8, NULL},
};

lsw_dtype lsw_dtype_from_name(const char *name, size_t len)
{
    for (int i = 1; i < LSW_DT_COUNT; i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return (lsw_dtype)i;
    return LSW_DT_INVALID;
}

const char *lsw_dtype_name(lsw_dtype dt)
{
    return (dt > 0 && dt < LSW_DT_COUNT) ? table[dt].name : "INVALID";
}

size_t lsw_dtype_size(lsw_dtype dt)
{
    return (dt > 0 && dt < LSW_DT_COUNT) ? table[dt].size : 0;
}

int lsw_dtype_is_arith(lsw_dtype dt)
{
    return dt == LSW_DT_BF16 || dt == LSW_DT_F16 || dt == LSW_DT_F32;
}

lsw_dtype lsw_dtype_from_torch_name(const char *name)
{
    for (int i = 1; i < LSW_DT_COUNT; i++)
        if (table[i].torch && strcmp(table[i].torch, name) == 0)
            return (lsw_dtype)i;
    return LSW_DT_INVALID;
}

const char *lsw_dtype_torch_name(lsw_dtype dt)
{
    return (dt > 0 && dt < LSW_DT_COUNT) ? table[dt].torch : NULL;
}
