/* unit_lock — lsw_lock: one owner per output folder, across processes and
 * (simulated) hosts.
 *
 * Holders run in child processes (fork); the parent, which holds nothing,
 * tries to take their folders.  Another host is simulated with
 * LSW_LOCK_HOST, a file system whose flock does not reach other hosts (NFS
 * without lock support) with LSW_LOCK_NO_FLOCK=1 (lsw_lock.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lsw_error.h"
#include "lsw_lock.h"
#include "lsw_test.h"

static char root[256];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *dir_of(const char *name)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", root, name);
    return b;
}

static int exists(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, LSW_LOCK_NAME);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* A child that takes `dir` as host `host` (NULL: the real one), reports on a
 * pipe, and waits to be killed (or exits after `hold` seconds). */
static pid_t holder(const char *dir, const char *host, int hold)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        if (host)
            setenv("LSW_LOCK_HOST", host, 1);
        int rc = lsw_lock_dir(dir, "merge");
        char c = rc ? 'x' : 'o';
        if (write(pfd[1], &c, 1) != 1)
            _exit(3);
        if (rc)
            _exit(2);
        sleep((unsigned)hold);
        lsw_lock_release_all();
        _exit(0);
    }
    close(pfd[1]);
    char c = 0;
    if (read(pfd[0], &c, 1) != 1 || c != 'o') {
        close(pfd[0]);
        return -1;
    }
    close(pfd[0]);
    return pid;
}

static void reap(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    if (sig)
        kill(pid, sig);
    waitpid(pid, NULL, 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int main(void)
{
    snprintf(root, sizeof root, "%s/unit_lock.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    unsetenv("LSW_LOCK_HOST");
    unsetenv("LSW_LOCK_NO_FLOCK");

    /* 1. a live holder on this host: refused at once, named; free again once it lets go */
    const char *a = dir_of("a/new/folder");
    pid_t h = holder(a, NULL, 30);
    CHECK(h > 0, "a holder takes a folder it creates");
    CHECK(exists(a), "the lock file exists while held");
    double t0 = now();
    int rc = lsw_lock_dir(a, "stats");
    char pidtxt[32];
    snprintf(pidtxt, sizeof pidtxt, "pid %ld", (long)h);
    CHECK(rc == LSW_E_LOCKED && strstr(lsw_err_detail(), pidtxt) && strstr(lsw_err_detail(), "layerswap merge"),
          "a second taker is refused, naming the holder: rc %d", rc);
    CHECK(lsw_err_exit_code(LSW_E_LOCKED) == 1, "LSW_E_LOCKED is exit 1");
    CHECK(now() - t0 < 2, "refused at once (%.1f s)", now() - t0);
    reap(h, SIGTERM); /* SIGTERM's default action: killed, no clean-up */
    rc = lsw_lock_dir(a, "stats");
    CHECK(rc == 0, "a killed holder's lock (same host) is taken over: rc %d", rc);
    CHECK(lsw_lock_held(a), "held after taking it");
    CHECK(lsw_lock_dir(a, "stats") == 0, "taking a folder this process holds is a no-op");
    lsw_lock_release_all();
    CHECK(!exists(a) && !lsw_lock_held(a), "released: the lock file is gone");

    /* 2. another host, coherent flock: refused at once */
    const char *b = dir_of("b");
    h = holder(b, "host-a", 30);
    CHECK(h > 0, "a holder on host-a");
    setenv("LSW_LOCK_HOST", "host-b", 1);
    t0 = now();
    rc = lsw_lock_dir(b, "merge");
    CHECK(rc == LSW_E_LOCKED && strstr(lsw_err_detail(), "host host-a"), "host-b is refused while host-a holds the flock");
    CHECK(now() - t0 < 2, "at once (%.1f s)", now() - t0);

    /* 3. another host, flock not coherent (it succeeds anyway): the beat moves, refused */
    setenv("LSW_LOCK_NO_FLOCK", "1", 1);
    t0 = now();
    rc = lsw_lock_dir(b, "merge");
    CHECK(rc == LSW_E_LOCKED && strstr(lsw_err_detail(), "do not reach this host"),
          "without a coherent flock, a live holder on another host is still refused (its beat moves): rc %d", rc);
    CHECK(now() - t0 < LSW_LOCK_WAIT_S + 2, "within the wait (%.1f s)", now() - t0);
    unsetenv("LSW_LOCK_NO_FLOCK");

    /* 4. another host whose holder died (flock released, beat still): taken over after the wait */
    reap(h, SIGKILL);
    t0 = now();
    rc = lsw_lock_dir(b, "merge");
    CHECK(rc == 0, "a dead holder on another host is taken over: rc %d", rc);
    CHECK(now() - t0 >= LSW_LOCK_WAIT_S - 1, "only after its beat stood still for the wait (%.1f s)", now() - t0);
    lsw_lock_release_all();
    unsetenv("LSW_LOCK_HOST");

    /* 5. this host, no flock at all: the pid decides */
    const char *c = dir_of("c");
    setenv("LSW_LOCK_NO_FLOCK", "1", 1);
    h = holder(c, NULL, 30);
    CHECK(h > 0, "a holder without flock");
    rc = lsw_lock_dir(c, "merge");
    CHECK(rc == LSW_E_LOCKED && strstr(lsw_err_detail(), "its process is alive"),
          "without flock, a live process on this host is refused: rc %d", rc);
    reap(h, SIGKILL);
    CHECK(lsw_lock_dir(c, "merge") == 0, "without flock, a dead process's lock is taken over");
    lsw_lock_release_all();
    unsetenv("LSW_LOCK_NO_FLOCK");

    /* 6. lock files left by hand, where flock does not work (so the content
     * decides): a reused pid (start time differs), garbage, a live pid 1 */
    setenv("LSW_LOCK_NO_FLOCK", "1", 1);
    char host[256];
    gethostname(host, sizeof host);
    const char *d = dir_of("d");
    mkdir(d, 0777);
    char lp[600], text[1024];
    snprintf(lp, sizeof lp, "%s/%s", d, LSW_LOCK_NAME);
    snprintf(text, sizeof text, "layerswap-lock 1\nhost %s\npid %ld\nstart 1\nslurm -.-\ncommand merge\nsince 0\nbeat 0000000000\n",
             host, (long)getppid());
    write_file(lp, text);
    CHECK(lsw_lock_dir(d, "merge") == 0, "a live pid with another start time (reused) is not the holder");
    lsw_lock_release_all();
    write_file(lp, "garbage\n");
    CHECK(lsw_lock_dir(d, "merge") == 0, "a lock file without a holder is stale");
    lsw_lock_release_all();
    FILE *f = fopen("/proc/1/stat", "r");
    unsigned long long st1 = 0;
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        char *s = strrchr(buf, ')');
        for (int field = 2; s && *s; s++)
            if (*s == ' ' && ++field == 22) {
                st1 = strtoull(s + 1, NULL, 10);
                break;
            }
    }
    snprintf(text, sizeof text, "layerswap-lock 1\nhost %s\npid 1\nstart %llu\nslurm 81234.0\ncommand sweep\nsince 0\nbeat 0000000007\n",
             host, st1);
    write_file(lp, text);
    rc = lsw_lock_dir(d, "merge");
    CHECK(rc == LSW_E_LOCKED && strstr(lsw_err_detail(), "Slurm job.step 81234.0") &&
          strstr(lsw_err_detail(), "layerswap sweep"),
          "without flock, a live process on this host holds it (Slurm ids named): rc %d", rc);
    unsetenv("LSW_LOCK_NO_FLOCK");
    CHECK(lsw_lock_dir(d, "merge") == 0, "with flock free on this host, the same file is stale (flock proves it)");
    lsw_lock_release_all();
    /* a zombie holder (exited, not reaped) is gone */
    setenv("LSW_LOCK_NO_FLOCK", "1", 1);
    h = holder(d, NULL, 0);   /* exits at once, and stays unreaped until waitpid below */
    CHECK(h > 0, "a holder that exits without releasing");
    usleep(200000);
    snprintf(text, sizeof text, "layerswap-lock 1\nhost %s\npid %ld\nstart 0\nslurm -.-\ncommand merge\nsince 0\nbeat 0000000000\n",
             host, (long)h);
    write_file(lp, text);
    CHECK(lsw_lock_dir(d, "merge") == 0, "a zombie holder is gone");
    lsw_lock_release_all();
    reap(h, 0);
    unsetenv("LSW_LOCK_NO_FLOCK");
    unlink(lp);

    /* 7. a symlink in place of the lock file is not followed */
    symlink("/etc/passwd", lp);
    rc = lsw_lock_dir(d, "merge");
    CHECK(rc == LSW_E_IO, "a symlinked lock file is an error, not followed: rc %d", rc);
    unlink(lp);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return LSW_TEST_END();
}
