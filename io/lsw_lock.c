#include "lsw_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "lsw_error.h"
#include "lsw_io.h"

typedef struct held {
    char *dir, *path;   /* the folder as given, its lock file */
    dev_t dev;          /* the folder's identity */
    ino_t ino;
    int fd;             /* the lock file, flocked */
    off_t beat_off;     /* offset of the beat counter's digits */
    unsigned long beat;
    int sync;           /* fdatasync each beat (a file system shared between hosts) */
} held;

typedef struct holder {   /* a lock file's content, as read */
    char host[256], pid[32], start[32], slurm[96], command[64], since[32], beat[16];
} holder;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static held *locks;
static size_t nlocks;
static pthread_t beat_thread;
static int beat_running, stopping, exit_hook;
static const char *cmd_name = "layerswap";

void lsw_lock_set_command(const char *command) { cmd_name = command ? command : "layerswap"; }
const char *lsw_lock_command(void) { return cmd_name; }

static void host_name(char *buf, size_t cap)
{
    const char *h = getenv("LSW_LOCK_HOST");
    if (h && *h)
        snprintf(buf, cap, "%s", h);
    else if (gethostname(buf, cap) != 0)
        snprintf(buf, cap, "?");
    buf[cap - 1] = 0;
    for (char *p = buf; *p; p++)   /* one token on its line */
        if (*p == ' ' || *p == '\n')
            *p = '_';
}

static int use_flock(void)
{
    const char *v = getenv("LSW_LOCK_NO_FLOCK");
    return !(v && *v && strcmp(v, "0") != 0);
}

/* Start time of process `pid` in clock ticks since boot (field 22 of
 * /proc/PID/stat); 0 when unknown.  *state (optional) gets field 3 ('Z': a
 * zombie, dead but not reaped -- where PID 1 reaps nothing, forever). */
static unsigned long long proc_start_state(long pid, char *state)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strrchr(buf, ')');   /* the command name may hold spaces */
    if (state)
        *state = s && s[1] == ' ' ? s[2] : '?';
    unsigned long long v = 0;
    for (int field = 2; s && *s; s++) {
        if (*s != ' ')
            continue;
        if (++field == 22) {
            v = strtoull(s + 1, NULL, 10);
            break;
        }
    }
    return v;
}

static unsigned long long proc_start(long pid) { return proc_start_state(pid, NULL); }

/* 1 if a process on this host is (still) the holder recorded. */
static int local_holder_alive(const holder *h)
{
    char *end;
    long pid = strtol(h->pid, &end, 10);
    if (*end || pid <= 0)
        return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    char state = '?';
    unsigned long long rec = strtoull(h->start, NULL, 10), now = proc_start_state(pid, &state);
    if (state == 'Z' || state == 'X')
        return 0;   /* exited, not yet reaped: its descriptors (and flock) are gone */
    return !(rec && now && rec != now);   /* a new process under a reused pid is not the holder */
}

/* File systems whose page cache is the only copy (one host): the beat need
 * not be flushed for others to see it. */
static int local_fs(int fd)
{
    struct statfs s;
    if (fstatfs(fd, &s) != 0)
        return 0;
    switch ((unsigned long)s.f_type) {
    case 0xEF53UL:      /* ext2/3/4 */
    case 0x58465342UL:  /* xfs */
    case 0x9123683EUL:  /* btrfs */
    case 0x01021994UL:  /* tmpfs */
    case 0x794C7630UL:  /* overlayfs */
    case 0x2FC12FC1UL:  /* zfs */
    case 0xF2F52010UL:  /* f2fs */
        return 1;
    }
    return 0;
}

static int content(char *buf, size_t cap, const char *command, size_t *beat_off)
{
    char host[256];
    host_name(host, sizeof host);
    const char *job = getenv("SLURM_JOB_ID"), *step = getenv("SLURM_STEP_ID");
    int n = snprintf(buf, cap, "layerswap-lock 1\nhost %s\npid %ld\nstart %llu\nslurm %s.%s\ncommand %s\nsince %lld\nbeat ",
                     host, (long)getpid(), proc_start((long)getpid()), job && *job ? job : "-",
                     step && *step ? step : "-", command, (long long)time(NULL));
    if (n < 0 || (size_t)n + 12 > cap)
        return -1;
    *beat_off = (size_t)n;
    return n + snprintf(buf + n, cap - (size_t)n, "%010lu\n", 0UL);
}

static void parse(const char *text, holder *h)
{
    memset(h, 0, sizeof *h);
    struct { const char *key; char *dst; size_t cap; } f[] = {
        {"host ", h->host, sizeof h->host},       {"pid ", h->pid, sizeof h->pid},
        {"start ", h->start, sizeof h->start},    {"slurm ", h->slurm, sizeof h->slurm},
        {"command ", h->command, sizeof h->command}, {"since ", h->since, sizeof h->since},
        {"beat ", h->beat, sizeof h->beat}};
    for (const char *l = text; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            size_t kl = strlen(f[i].key);
            if (len > kl && !strncmp(l, f[i].key, kl)) {
                size_t vl = len - kl < f[i].cap - 1 ? len - kl : f[i].cap - 1;
                memcpy(f[i].dst, l + kl, vl);
                f[i].dst[vl] = 0;
            }
        }
        l = e ? e + 1 : NULL;
    }
}

/* Read the lock file at `path` afresh (a new open: NFS revalidates on open). */
static int read_holder(const char *path, holder *h)
{
    char buf[2048];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    parse(buf, h);
    return 0;
}

static int same_file(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int locked_error(const char *dir, const holder *h, const char *why)
{
    char since[64] = "?";
    time_t t = (time_t)strtoll(h->since, NULL, 10);
    struct tm tm;
    if (t > 0 && localtime_r(&t, &tm))
        strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S", &tm);
    const char *slurm = h->slurm[0] && strcmp(h->slurm, "-.-") != 0 ? h->slurm : NULL;
    return lsw_err_set(LSW_E_LOCKED,
                       "%s: output folder in use by another run (layerswap %s on host %s, pid %s%s%s, since %s%s); "
                       "nothing was touched: wait for it to end, or choose another -o (if that run is gone, remove "
                       "%s/%s)",
                       dir, h->command[0] ? h->command : "?", h->host[0] ? h->host : "?", h->pid[0] ? h->pid : "?",
                       slurm ? ", Slurm job.step " : "", slurm ? slurm : "", since, why, dir, LSW_LOCK_NAME);
}

/* Write our lock file as `tmp`, flock it, and put it in place: link (new) or
 * rename (replacing a stale one).  1: someone else's appeared first (retry). */
static int create_lock(const char *dir, const char *path, const char *command, int replace, held *h)
{
    char buf[1024], tmp[4096];
    size_t boff = 0;
    int n = content(buf, sizeof buf, command, &boff);
    snprintf(tmp, sizeof tmp, "%s/%s.%ld.tmp", dir, LSW_LOCK_NAME, (long)getpid());
    if (n < 0 || strlen(dir) + 64 > sizeof tmp)
        return lsw_err_set(LSW_E_IO, "%s: folder name too long for its lock file", dir);
    unlink(tmp);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return lsw_err_set(errno == ENOSPC || errno == EDQUOT ? LSW_E_NOSPACE : LSW_E_IO,
                           "%s: cannot create the lock file: %s", tmp, strerror(errno));
    int rc = lsw_pwrite_full(fd, buf, (size_t)n, 0, tmp);
    if (!rc && fdatasync(fd) != 0 && errno != EINVAL)
        rc = lsw_err_set(LSW_E_IO, "%s: cannot write the lock file: %s", tmp, strerror(errno));
    if (!rc && use_flock() && flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        rc = lsw_err_set(LSW_E_INTERNAL, "%s: a fresh lock file is locked by someone else", tmp);
    int placed = 0;
    if (!rc && replace) {
        if (rename(tmp, path) != 0)
            rc = lsw_err_set(LSW_E_IO, "%s: cannot take over the lock file: %s", path, strerror(errno));
        else
            placed = 1;
    } else if (!rc) {
        if (link(tmp, path) == 0)
            placed = 1;
        else if (errno == EEXIST)
            rc = 1;
        else
            rc = lsw_err_set(LSW_E_IO, "%s: cannot create the lock file: %s", path, strerror(errno));
    }
    if (!placed || !replace)
        unlink(tmp);
    if (rc) {
        close(fd);
        return rc;
    }
    h->fd = fd;
    h->beat_off = (off_t)boff;
    h->beat = 0;
    h->sync = !local_fs(fd);
    return 0;
}

/* A lock file whose flock we could take (`flocked`), or where flock does not
 * work: is its holder gone?  0 gone, 1 alive (error set), 2 the file went
 * away.  On this host an flock we could take is proof enough: locks are
 * coherent within one kernel, and the holder's descriptor closed when it
 * died. */
static int holder_state(const char *dir, const char *path, int flocked, holder *h)
{
    char me[256];
    host_name(me, sizeof me);
    /* a holder writes its file whole before linking it: an empty or foreign
     * file is stale */
    if (read_holder(path, h) != 0)
        return 2;
    if (!h->host[0] || !h->pid[0] || !h->beat[0])
        return 0;
    if (!strcmp(h->host, me))
        return !flocked && local_holder_alive(h) ? (locked_error(dir, h, "; its process is alive"), 1) : 0;
    /* another host: only its beat tells whether it lives */
    char first[16];
    snprintf(first, sizeof first, "%s", h->beat);
    for (int i = 0; i < 4 * LSW_LOCK_WAIT_S; i++) {
        struct timespec ts = {0, 250000000L};
        nanosleep(&ts, NULL);
        holder now;
        if (read_holder(path, &now) != 0)
            return 2;
        if (strcmp(now.host, h->host) || strcmp(now.pid, h->pid))
            return 2;   /* changed hands meanwhile: look again */
        if (strcmp(now.beat, first)) {
            *h = now;
            return locked_error(dir, h, "; its lock is alive on a file system whose locks do not reach this host"), 1;
        }
    }
    return 0;
}

/* Take the lock file `path` of `dir` into h.  See the header for the rules. */
static int take(const char *dir, const char *path, const char *command, held *h)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0 && errno == ENOENT) {
            int rc = create_lock(dir, path, command, 0, h);
            if (rc == 1)
                continue;
            return rc;
        }
        if (fd < 0)
            return lsw_err_set(LSW_E_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
        holder who;
        int flocked = 0;
        if (use_flock()) {
            if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                flocked = 1;
            else if (errno == EWOULDBLOCK) {
                close(fd);
                if (read_holder(path, &who) != 0)
                    continue;
                return locked_error(dir, &who, "");
            } /* else ENOLCK, EOPNOTSUPP...: no flock on this file system */
        }
        if (!same_file(fd, path)) {   /* replaced or removed meanwhile */
            close(fd);
            continue;
        }
        int st = holder_state(dir, path, flocked, &who);
        int rc = st == 0 ? create_lock(dir, path, command, 1, h) : st == 1 ? LSW_E_LOCKED : 1;
        close(fd);   /* the stale file's flock, held while it was replaced */
        if (rc != 1)
            return rc;
    }
    return lsw_err_set(LSW_E_LOCKED, "%s: output folder in use: its lock changed hands 50 times while this run tried "
                       "to take it", dir);
}

static void *beat_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += LSW_LOCK_BEAT_S;
        while (!stopping && pthread_cond_timedwait(&cv, &mu, &ts) != ETIMEDOUT) {
        }
        for (size_t i = 0; !stopping && i < nlocks; i++) {
            char d[16];
            int n = snprintf(d, sizeof d, "%010lu", ++locks[i].beat % 10000000000UL);
            if (pwrite(locks[i].fd, d, (size_t)n, locks[i].beat_off) == n && locks[i].sync)
                (void)fdatasync(locks[i].fd);
        }
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void start_beat(void)
{
    if (beat_running)
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* signals go to the main thread */
    stopping = 0;
    beat_running = pthread_create(&beat_thread, NULL, beat_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void release_at_exit(void) { lsw_lock_release_all(); }

int lsw_lock_held(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return 0;
    pthread_mutex_lock(&mu);
    int found = 0;
    for (size_t i = 0; i < nlocks && !found; i++)
        found = locks[i].dev == st.st_dev && locks[i].ino == st.st_ino;
    pthread_mutex_unlock(&mu);
    return found;
}

int lsw_lock_dir(const char *dir, const char *command)
{
    int rc = lsw_mkdir_p(dir);
    if (rc)
        return rc;
    if (lsw_lock_held(dir))
        return 0;
    struct stat st;
    if (stat(dir, &st) != 0)
        return lsw_err_set(LSW_E_IO, "%s: cannot stat the output folder: %s", dir, strerror(errno));
    held h;
    memset(&h, 0, sizeof h);
    h.fd = -1;
    h.dev = st.st_dev;
    h.ino = st.st_ino;
    if (!(h.dir = strdup(dir)) || !(h.path = lsw_path_join(dir, LSW_LOCK_NAME))) {
        free(h.dir);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    rc = take(dir, h.path, command ? command : cmd_name, &h);
    pthread_mutex_lock(&mu);
    held *nl = rc ? NULL : realloc(locks, (nlocks + 1) * sizeof *nl);
    if (!rc && !nl)
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (!rc) {
        locks = nl;
        locks[nlocks++] = h;
        if (!exit_hook)
            exit_hook = atexit(release_at_exit) == 0;
        start_beat();
    }
    pthread_mutex_unlock(&mu);
    if (rc) {
        if (h.fd >= 0) {
            if (same_file(h.fd, h.path))
                unlink(h.path);
            close(h.fd);
        }
        free(h.dir);
        free(h.path);
    }
    return rc;
}

void lsw_lock_release_all(void)
{
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&cv);
    int joined = beat_running;
    pthread_mutex_unlock(&mu);
    if (joined)
        pthread_join(beat_thread, NULL);
    pthread_mutex_lock(&mu);
    beat_running = 0;
    for (size_t i = 0; i < nlocks; i++) {
        /* remove only our own file (a run that took over a lock it judged
         * stale has put its own there) */
        if (same_file(locks[i].fd, locks[i].path))
            unlink(locks[i].path);
        close(locks[i].fd);
        free(locks[i].dir);
        free(locks[i].path);
    }
    free(locks);
    locks = NULL;
    nlocks = 0;
    pthread_mutex_unlock(&mu);
}
