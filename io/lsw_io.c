#include "lsw_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsw_error.h"

static int io_rank = 0;
/* Fault budgets in bytes: -2 not read from the environment yet, -1 off. */
static int64_t write_budget = -2, read_budget = -2, stop_budget = -2, kill_write_budget = -2, kill_read_budget = -2;

void lsw_io_set_rank(int rank) { io_rank = rank; }

/* Several threads read and write (scan threads, the write-behind thread):
 * the budgets are spent under one lock. */
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;

static int fault_hit(int64_t *budget, const char *var, size_t n)
{
    pthread_mutex_lock(&fault_mu);
    if (*budget == -2) {
        const char *a = getenv(var), *r = getenv("LSW_FAULT_RANK");
        *budget = -1;
        if (a && (!r || atoi(r) == io_rank))
            *budget = strtoll(a, NULL, 10);
    }
    int hit = 0;
    if (*budget >= 0) {
        hit = (int64_t)n > *budget;
        if (!hit)
            *budget -= (int64_t)n;
    }
    pthread_mutex_unlock(&fault_mu);
    return hit;
}

/* LSW_FAULT_KILL_*_AFTER: SIGKILL once the budget is spent (a crash, not an error). */
static void fault_kill(int64_t *budget, const char *var, size_t n)
{
    if (fault_hit(budget, var, n))
        raise(SIGKILL);
}

void lsw_io_count_read(size_t n)
{
    if (fault_hit(&stop_budget, "LSW_FAULT_STOP_AFTER", n)) {
        stop_budget = -1;
        raise(SIGUSR1);
    }
    fault_kill(&kill_read_budget, "LSW_FAULT_KILL_READ_AFTER", n);
}

void lsw_io_count_write(size_t n) { fault_kill(&kill_write_budget, "LSW_FAULT_KILL_WRITE_AFTER", n); }

static int write_error(const char *path, int err)
{
    int code = (err == ENOSPC || err == EDQUOT) ? LSW_E_NOSPACE : LSW_E_IO;
    return lsw_err_set(code, "%s: write failed: %s", path, strerror(err));
}

int lsw_pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path)
{
    if (fault_hit(&stop_budget, "LSW_FAULT_STOP_AFTER", n)) { /* as if SIGUSR1 arrived now */
        stop_budget = -1;
        raise(SIGUSR1);
    }
    fault_kill(&kill_read_budget, "LSW_FAULT_KILL_READ_AFTER", n);
    if (fault_hit(&read_budget, "LSW_FAULT_READ_AFTER", n))
        return lsw_err_set(LSW_E_READ, "%s: read failed at offset %llu: %s (injected)", path,
                           (unsigned long long)off, strerror(EIO));
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return lsw_err_set(LSW_E_READ, "%s: read failed at offset %llu: %s", path,
                               (unsigned long long)off, strerror(errno));
        }
        if (r == 0)
            return lsw_err_set(LSW_E_READ, "%s: file ended early at offset %llu (truncated while reading?)",
                               path, (unsigned long long)off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int lsw_pwrite_full(int fd, const void *buf, size_t n, uint64_t off, const char *path)
{
    fault_kill(&kill_write_budget, "LSW_FAULT_KILL_WRITE_AFTER", n);
    if (fault_hit(&write_budget, "LSW_FAULT_WRITE_AFTER", n))
        return write_error(path, ENOSPC);
    const char *p = buf;
    while (n) {
        ssize_t r = pwrite(fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return write_error(path, errno);
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

void lsw_writeback(int fd, uint64_t off, uint64_t n)
{
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd, (void)off, (void)n;
#endif
}

int lsw_fsync_fd(int fd, const char *path)
{
    while (fsync(fd) != 0) {
        if (errno != EINTR)
            return write_error(path, errno);
    }
    return 0;
}

int lsw_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return lsw_err_set(LSW_E_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = write_error(dir, errno);
    close(fd);
    return rc;
}

int lsw_mkdir_p(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                rc = lsw_err_set(LSW_E_IO, "%s: cannot create folder: %s", p, strerror(errno));
                break;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    if (rc == 0 && !lsw_is_dir(dir))
        rc = lsw_err_set(LSW_E_IO, "%s: exists and is not a folder", dir);
    free(p);
    return rc;
}

int lsw_read_file(const char *path, char **out, size_t *len)
{
    *out = NULL;
    const char *kind = NULL;
    int fd = lsw_open_regular(path, &kind);
    if (fd < 0 && kind)
        return lsw_err_set(LSW_E_NOTFOUND, "%s: is %s, not a regular file", path, kind);
    if (fd < 0)
        return lsw_err_set(LSW_E_NOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return lsw_err_set(LSW_E_NOTFOUND, "%s: cannot stat: %s", path, strerror(errno));
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return lsw_err_set(LSW_E_NOMEM, "%s: out of memory", path);
    }
    int rc = lsw_pread_full(fd, buf, (size_t)st.st_size, 0, path);
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[st.st_size] = 0;
    *out = buf;
    *len = (size_t)st.st_size;
    return 0;
}

int lsw_write_file_atomic(const char *dir, const char *name, const void *buf, size_t n)
{
    size_t need = strlen(dir) + strlen(name) + 32;
    char *tmp = malloc(need), *fin = malloc(need);
    if (!tmp || !fin) {
        free(tmp);
        free(fin);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    /* the pid keeps concurrent writers of the same name (e.g. two
     * `sweep --emit-array` of one sweep) off each other's temporary */
    snprintf(tmp, need, "%s/.%s.%ld.lsw-tmp", dir, name, (long)getpid());
    snprintf(fin, need, "%s/%s", dir, name);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = lsw_err_set(LSW_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    rc = lsw_pwrite_full(fd, buf, n, 0, tmp);
    if (!rc)
        rc = lsw_fsync_fd(fd, tmp);
    close(fd);
    if (!rc && rename(tmp, fin) != 0)
        rc = lsw_err_set(LSW_E_IO, "%s: rename failed: %s", fin, strerror(errno));
    if (rc)
        unlink(tmp);
    else
        rc = lsw_fsync_dir(dir);
out:
    free(tmp);
    free(fin);
    return rc;
}

int lsw_write_path_atomic(const char *path, const void *buf, size_t n)
{
    char *dir = lsw_dirname(path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int rc = dir ? lsw_write_file_atomic(dir, base, buf, n) : lsw_err_set(LSW_E_NOMEM, "out of memory");
    free(dir);
    return rc;
}

char *lsw_path_join(const char *a, const char *b)
{
    if (b[0] == '/' || a[0] == 0)
        return strdup(b);
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t k = la;
    if (a[la - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, b, lb + 1);
    return p;
}

int lsw_plain_name(const char *name)
{
    return name && *name && !strchr(name, '/') && !strchr(name, '\\') && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

char *lsw_dirname(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return strdup(".");
    if (s == path)
        return strdup("/");
    return strndup(path, (size_t)(s - path));
}

int lsw_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int lsw_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *lsw_path_kind(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return NULL;
    if (S_ISFIFO(st.st_mode))
        return "a FIFO";
    if (S_ISCHR(st.st_mode))
        return "a character device";
    if (S_ISBLK(st.st_mode))
        return "a block device";
    if (S_ISSOCK(st.st_mode))
        return "a socket";
    return NULL;
}

int lsw_open_regular(const char *path, const char **kind)
{
    if (kind)
        *kind = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (kind)
            *kind = lsw_path_kind(path); /* a socket cannot be opened at all */
        errno = kind && *kind ? EINVAL : e;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int isdir = S_ISDIR(st.st_mode);
        close(fd);
        if (kind)
            *kind = isdir ? "a folder" : lsw_path_kind(path);
        if (kind && !*kind)
            *kind = "not a regular file";
        errno = isdir ? EISDIR : EINVAL;
        return -1;
    }
    /* regular: blocking reads from here on (O_NONBLOCK means nothing for a
     * regular file, but leave the descriptor as ordinary as any other) */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

/* Append component c (len n) to the absolute path in b (capacity cap) as
 * text: "." ignored, ".." drops the last component.  -1 if it does not fit. */
static int push_component(char *b, size_t cap, const char *c, size_t n)
{
    if (n == 0 || (n == 1 && c[0] == '.'))
        return 0;
    size_t l = strlen(b);
    if (n == 2 && c[0] == '.' && c[1] == '.') {
        char *s = strrchr(b, '/');
        if (s == b)
            b[1] = 0;
        else if (s)
            *s = 0;
        return 0;
    }
    int slash = !(l == 1 && b[0] == '/');
    if (l + slash + n + 1 > cap)
        return -1;
    if (slash)
        b[l++] = '/';
    memcpy(b + l, c, n);
    b[l + n] = 0;
    return 0;
}

char *lsw_path_resolve_future(const char *path)
{
    char *b = malloc(PATH_MAX), *tmp = malloc(PATH_MAX);
    if (!b || !tmp) {
        free(b);
        free(tmp);
        return NULL;
    }
    int ok = 1;
    if (path[0] == '/')
        strcpy(b, "/");
    else
        ok = getcwd(b, PATH_MAX) != NULL;
    /* while the path so far exists, let the kernel resolve each step */
    int exists = 1;
    for (const char *p = path; ok && *p;) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t n = (size_t)(e - p);
        if (n) {
            size_t l = strlen(b);
            if (exists && l + 1 + n + 1 <= PATH_MAX) {
                size_t k = l;
                memcpy(tmp, b, l);
                if (!(l == 1 && b[0] == '/'))
                    tmp[k++] = '/';
                memcpy(tmp + k, p, n);
                tmp[k + n] = 0;
                char *r = realpath(tmp, NULL);
                if (r && strlen(r) < PATH_MAX) {
                    strcpy(b, r);
                    free(r);
                } else {
                    free(r);
                    exists = 0; /* from here on, folders mkdir -p will create */
                    ok = push_component(b, PATH_MAX, p, n) == 0;
                }
            } else {
                exists = 0;
                ok = push_component(b, PATH_MAX, p, n) == 0;
            }
        }
        p = e;
    }
    free(tmp);
    if (!ok) {
        free(b);
        return NULL;
    }
    return b;
}
