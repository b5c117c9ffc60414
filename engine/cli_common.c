#include "cli_common.h"

#include <stdio.h>
#include <stdlib.h>

#include "lsw_config.h"
#include "lsw_error.h"
#include "lsw_exec.h"

int lsw_cli_usage_error(int rank, const char *cmd, const char *fmt, const char *arg)
{
    if (rank == 0) {
        char msg[512];
        snprintf(msg, sizeof msg, fmt, arg);
        fprintf(stderr, "layerswap %s: error: %s; see 'layerswap %s --help' [%s, exit %d]\n", cmd, msg, cmd,
                lsw_err_message(LSW_E_USAGE), lsw_err_exit_code(LSW_E_USAGE));
    }
    return lsw_err_exit_code(LSW_E_USAGE);
}

int lsw_cli_mem(int rank, const char *cmd, const char *arg, uint64_t *mem)
{
    if (lsw_parse_size(arg, mem) || *mem < LSW_MIN_MEM)
        return lsw_cli_usage_error(rank, cmd, "--mem needs a size from 1M up, such as 512M or 2G (suffixes K M G T, "
                                   "KB MB GB TB), not '%s'", arg);
    return 0;
}

int lsw_cli_progress(int rank, const char *cmd, const char *arg, double *secs)
{
    char *end;
    *secs = strtod(arg, &end);
    if (*end || end == arg || !(*secs > 0))
        return lsw_cli_usage_error(rank, cmd, "--progress needs a positive number of seconds, not '%s'", arg);
    return 0;
}
