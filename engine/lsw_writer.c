#include "lsw_writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_io.h"

enum { J_WRITE, J_CRC, J_FORGET };

typedef struct job {
    int kind, fd;
    const void *buf;
    size_t n;
    uint64_t off;
    const char *name;
    uint32_t *crc;
} job;

/* A file's current run of consecutive writes since its last writeback kick. */
typedef struct run { int fd; uint64_t from, pending; } run;

struct lsw_writer {
    int threaded, quit;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    job *q;
    size_t cap;
    uint64_t queued, done;    /* jobs ever queued / done */
    int rc;                   /* first failure */
    char detail[1024];
    run runs[64];             /* the writer's own (its thread only) */
    uint64_t bytes;
};

static run *run_of(lsw_writer *w, int fd)
{
    run *free_slot = NULL;
    for (size_t i = 0; i < sizeof w->runs / sizeof w->runs[0]; i++) {
        if (w->runs[i].fd == fd)
            return &w->runs[i];
        if (w->runs[i].fd < 0 && !free_slot)
            free_slot = &w->runs[i];
    }
    if (!free_slot) { /* more files than slots: start over (a kick is only a hint) */
        free_slot = &w->runs[0];
        lsw_writeback(free_slot->fd, free_slot->from, free_slot->pending);
    }
    *free_slot = (run){fd, 0, 0};
    return free_slot;
}

static int do_job(lsw_writer *w, const job *j)
{
    if (j->kind == J_CRC) {
        *j->crc = lsw_crc32c(*j->crc, j->buf, j->n);
        return 0;
    }
    if (j->kind == J_FORGET) {
        for (size_t i = 0; i < sizeof w->runs / sizeof w->runs[0]; i++)
            if (w->runs[i].fd == j->fd)
                w->runs[i].fd = -1;
        return 0;
    }
    int rc = lsw_pwrite_full(j->fd, j->buf, j->n, j->off, j->name);
    if (rc)
        return rc;
    run *r = run_of(w, j->fd);
    if (j->off != r->from + r->pending) {
        r->from = j->off;
        r->pending = 0;
    }
    r->pending += j->n;
    if (r->pending >= LSW_WRITER_KICK) {
        lsw_writeback(j->fd, r->from, r->pending);
        r->from += r->pending;
        r->pending = 0;
    }
    w->bytes += j->n;
    return 0;
}

/* Run job number `seq` (the oldest undone); records the first failure. */
static void run_job(lsw_writer *w, const job *j)
{
    int skip;
    pthread_mutex_lock(&w->mu);
    skip = w->rc != 0;
    pthread_mutex_unlock(&w->mu);
    int rc = skip ? 0 : do_job(w, j);
    pthread_mutex_lock(&w->mu);
    if (rc && !w->rc) {
        w->rc = rc;
        snprintf(w->detail, sizeof w->detail, "%s", lsw_err_detail());
    }
    if (rc)
        lsw_err_clear();
    w->done++;
    pthread_cond_broadcast(&w->cv_done);
    pthread_mutex_unlock(&w->mu);
}

static void *thread_main(void *arg)
{
    lsw_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->done == w->queued && !w->quit)
            pthread_cond_wait(&w->cv_job, &w->mu);
        if (w->done == w->queued)
            break;
        job j = w->q[w->done % w->cap];
        pthread_mutex_unlock(&w->mu);
        run_job(w, &j);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int lsw_writer_create(int threads, size_t depth, lsw_writer **out)
{
    *out = NULL;
    lsw_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->q = calloc(depth ? depth : 1, sizeof *w->q))) {
        free(w);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    w->cap = depth ? depth : 1;
    for (size_t i = 0; i < sizeof w->runs / sizeof w->runs[0]; i++)
        w->runs[i].fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_job, NULL);
    pthread_cond_init(&w->cv_done, NULL);
    if (threads > 0 && pthread_create(&w->th, NULL, thread_main, w) == 0)
        w->threaded = 1;
    *out = w;
    return 0;
}

void lsw_writer_free(lsw_writer *w)
{
    if (!w)
        return;
    if (w->threaded) {
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        pthread_cond_broadcast(&w->cv_job);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
    }
    for (size_t i = 0; i < sizeof w->runs / sizeof w->runs[0]; i++)
        if (w->runs[i].fd >= 0 && w->runs[i].pending)
            lsw_writeback(w->runs[i].fd, w->runs[i].from, w->runs[i].pending);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv_job);
    pthread_cond_destroy(&w->cv_done);
    free(w->q);
    free(w);
}

static int queue(lsw_writer *w, const job *j)
{
    if (!w->threaded) {
        run_job(w, j);
        w->queued++;
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    while (w->queued - w->done >= w->cap)
        pthread_cond_wait(&w->cv_done, &w->mu);
    w->q[w->queued % w->cap] = *j;
    w->queued++;
    pthread_cond_signal(&w->cv_job);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int lsw_writer_write(lsw_writer *w, int fd, const void *buf, size_t n, uint64_t off, const char *name)
{
    job j = {J_WRITE, fd, buf, n, off, name, NULL};
    return queue(w, &j);
}

int lsw_writer_crc(lsw_writer *w, uint32_t *crc, const void *buf, size_t n)
{
    job j = {J_CRC, -1, buf, n, 0, NULL, crc};
    return queue(w, &j);
}

void lsw_writer_forget(lsw_writer *w, int fd)
{
    job j = {J_FORGET, fd, NULL, 0, 0, NULL, NULL};
    queue(w, &j);
}

uint64_t lsw_writer_mark(const lsw_writer *w) { return w->queued; }

int lsw_writer_wait(lsw_writer *w, uint64_t mark)
{
    pthread_mutex_lock(&w->mu);
    while (w->done < mark)
        pthread_cond_wait(&w->cv_done, &w->mu);
    int rc = w->rc;
    char detail[sizeof w->detail];
    memcpy(detail, w->detail, sizeof detail);
    pthread_mutex_unlock(&w->mu);
    if (rc && !lsw_err_last())
        lsw_err_set(rc, "%s", detail);
    return rc;
}

uint64_t lsw_writer_bytes(const lsw_writer *w) { return w->bytes; }
