#include "lsw_h5probe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lsw_checkpoint.h"
#include "lsw_error.h"

extern char **environ;

int lsw_h5probe_child(const char *path)
{
    lsw_ckpt *c = NULL;
    int rc = lsw_ckpt_open(path, &c);
    lsw_ckpt_close(c);
    if (!rc)
        return 0;
    fprintf(stderr, "%s\n", lsw_err_detail());
    return lsw_err_exit_code(rc);
}

int lsw_h5probe_run(const char *path)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return 0;
    /* the environment, plus a heap that is never zero-filled */
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env) {
        close(pfd[0]);
        close(pfd[1]);
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MALLOC_PERTURB_=", 16) != 0)
            env[k++] = environ[i];
    env[k++] = "MALLOC_PERTURB_=165";
    env[k] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    char *argv[] = {"layerswap", "__h5probe", (char *)path, NULL};
    pid_t pid;
    int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(pfd[1]);
    if (e != 0) {
        close(pfd[0]);
        return 0;
    }
    char msg[1024];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(pfd[0], msg + got, sizeof msg - 1 - got);
        if (r > 0 && (got += (size_t)r) < sizeof msg - 1)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0) {   /* more than fits: drain the rest */
            char sink[4096];
            while (read(pfd[0], sink, sizeof sink) > 0) {
            }
        }
        break;
    }
    close(pfd[0]);
    msg[got] = '\0';
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    /* a refusal (exit 2) or a read error (exit 4) carries the child's own
     * message; anything else is a crash, however it showed (a signal, or a
     * sanitizer's exit code) */
    if (WIFEXITED(st) && msg[0] &&
        (WEXITSTATUS(st) == lsw_err_exit_code(LSW_E_INPUT) || WEXITSTATUS(st) == lsw_err_exit_code(LSW_E_IO)))
        return lsw_err_set(WEXITSTATUS(st) == lsw_err_exit_code(LSW_E_IO) ? LSW_E_IO : LSW_E_INPUT, "%s", msg);
    char how[32];
    snprintf(how, sizeof how, WIFSIGNALED(st) ? "signal %d" : "exit %d",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    return lsw_err_set(LSW_E_INPUT,
                       "%s: the HDF5 library crashed reading this file (%s in a probe process): it is damaged; it "
                       "was not opened here", path, how);
}
