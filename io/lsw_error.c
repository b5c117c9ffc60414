#include "lsw_error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char detail[1024];
static _Thread_local int last_code;

const char *lsw_err_name(int code)
{
    switch (code) {
#define LSW_X_NAME(sym, val, ex, msg) case val: return #sym;
        LSW_ERROR_TABLE(LSW_X_NAME)
#undef LSW_X_NAME
    }
    return "LSW_E_UNKNOWN";
}

const char *lsw_err_message(int code)
{
    switch (code) {
#define LSW_X_MSG(sym, val, ex, msg) case val: return msg;
        LSW_ERROR_TABLE(LSW_X_MSG)
#undef LSW_X_MSG
    }
    return "unknown error";
}

int lsw_err_exit_code(int code)
{
    switch (code) {
#define LSW_X_EXIT(sym, val, ex, msg) case val: return ex;
        LSW_ERROR_TABLE(LSW_X_EXIT)
#undef LSW_X_EXIT
    }
    return 70;
}

int lsw_err_set(int code, const char *fmt, ...)
{
    if (last_code == 0 && code != 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        last_code = code;
    }
    return code;
}

int lsw_err_recode(int code)
{
    last_code = code;
    return code;
}

const char *lsw_err_detail(void) { return detail; }
int lsw_err_last(void) { return last_code; }
void lsw_err_clear(void) { detail[0] = 0; last_code = 0; }
