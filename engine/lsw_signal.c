#include "lsw_signal.h"

#include <string.h>

#include "lsw_error.h"

volatile sig_atomic_t lsw_stop_signal = 0;

static void on_stop(int sig) { lsw_stop_signal = sig; }

void lsw_install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &sa, NULL);
}

int lsw_stop_check(void)
{
    int sig = lsw_stop_signal;
    if (!sig)
        return 0;
    return lsw_err_set(LSW_E_INTERRUPTED, "stopped by signal %d; finished work is kept, rerun the same command to resume",
                       sig);
}
