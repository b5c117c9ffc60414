/* lsw_test.h — the assertion harness of the C unit tests.
 *
 *   CHECK(cond, fmt, ...)  counts a pass, or counts a failure and prints
 *                          "FAIL file:line: cond: message [last error detail]"
 *                          (the first 50 failures); either way the recorded
 *                          error is cleared, so each check sees only the
 *                          error of the call it examines;
 *   LSW_TEST_END()         prints "N passed, M failed" and is the exit status.
 */
#ifndef LSW_TEST_H
#define LSW_TEST_H

#include <stdio.h>

#include "lsw_error.h"

static long n_pass, n_fail;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            n_pass++;                                                           \
        } else {                                                                \
            n_fail++;                                                           \
            if (n_fail <= 50) {                                                 \
                fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
                fprintf(stderr, __VA_ARGS__);                                   \
                if (lsw_err_detail()[0])                                        \
                    fprintf(stderr, " [%s]", lsw_err_detail());                 \
                fputc('\n', stderr);                                            \
            }                                                                   \
        }                                                                       \
        lsw_err_clear();                                                        \
    } while (0)

#define LSW_TEST_END() (printf("%ld passed, %ld failed\n", n_pass, n_fail), n_fail ? 1 : 0)

#endif
