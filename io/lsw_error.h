/* lsw_error — the one table of layerswap error codes.
 *
 * Every fallible function returns 0 (LSW_OK) or one of the negative codes
 * below.  Each code has a short name, a message and the process exit code
 * that docs/cli.md fixes for it.  A function that fails also records one line of
 * detail ("FILE: tensor 'NAME': RULE") with lsw_err_set(); the caller prints
 * it.  The detail buffer is per thread; the first error wins until cleared.
 */
#ifndef LSW_ERROR_H
#define LSW_ERROR_H

#include <stddef.h>

/*  X(symbol, value, exit code, message) */
#define LSW_ERROR_TABLE(X)                                                        \
    X(LSW_OK,            0,  0, "success")                                        \
    X(LSW_E_USAGE,      -1,  1, "usage error")                                    \
    X(LSW_E_CONFIG,     -2,  1, "config error")                                   \
    X(LSW_E_EXISTS,     -3,  1, "output exists (use --overwrite)")                \
    X(LSW_E_INPUT,      -4,  2, "bad input checkpoint")                           \
    X(LSW_E_NOTFOUND,   -5,  2, "input not found or unreadable")                  \
    X(LSW_E_MISMATCH,   -6,  2, "input checkpoints disagree")                     \
    X(LSW_E_READ,       -7,  2, "input read error")                               \
    X(LSW_E_INTERRUPTED,-8,  3, "interrupted; rerun the same command to resume")  \
    X(LSW_E_IO,         -9,  4, "output I/O error")                               \
    X(LSW_E_NOSPACE,   -10,  4, "no space left on output device")                 \
    X(LSW_E_VERIFY,    -11,  2, "output folder failed verification")              \
    X(LSW_E_NOMEM,     -12, 70, "out of memory")                                  \
    X(LSW_E_INTERNAL,  -13, 70, "internal error")                                 \
    X(LSW_E_LOCKED,    -14,  1, "output folder in use by another run")

enum lsw_error {
#define LSW_X_ENUM(sym, val, ex, msg) sym = (val),
    LSW_ERROR_TABLE(LSW_X_ENUM)
#undef LSW_X_ENUM
};

/* Name of a code ("LSW_E_INPUT"); "LSW_E_UNKNOWN" for a value not in the table. */
const char *lsw_err_name(int code);
/* Fixed message of a code. */
const char *lsw_err_message(int code);
/* Process exit code of docs/cli.md for an error code (70 for unknown codes). */
int lsw_err_exit_code(int code);

/* Record the detail of an error and return `code`, so that
 *   return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': %s", file, name, rule);
 * reads naturally.  Keeps the first detail until lsw_err_clear(). */
int lsw_err_set(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Keep the recorded detail but report it under another code (e.g. a bad
 * checkpoint found by `verify` becomes LSW_E_VERIFY); returns `code`. */
int lsw_err_recode(int code);
/* Detail of the last recorded error ("" if none). Owned by the library. */
const char *lsw_err_detail(void);
/* Code of the last recorded error (0 if none). */
int lsw_err_last(void);
void lsw_err_clear(void);

#endif
