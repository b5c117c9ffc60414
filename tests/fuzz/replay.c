/* replay — run a libFuzzer harness over files, without libFuzzer.
 *
 *   fuzz_replay_X FILE_OR_FOLDER...
 *
 * Linked with one tests/fuzz/fuzz_X.c, it calls LLVMFuzzerTestOneInput once
 * per file (folders: every regular file in them, in name order) and exits 0
 * if none aborted.  ctest runs it over tests/fuzz/seeds/X, which holds the
 * seeds and every input that once broke a parser, so the harnesses' checks
 * (and, in a sanitizer build, ASan and UBSan) guard against regressions on
 * any compiler.  Scratch files the harnesses leave in /dev/shm
 * (fz-*-PID*) are removed at the end. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "replay: out of memory for %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "Usage: %s FILE_OR_FOLDER...\n", argv[0]);
        return 1;
    }
    size_t done = 0;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: no such file or folder\n", argv[i]);
            bad = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad |= run_file(argv[i]) != 0;
            done++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        char **names = NULL;
        size_t nn = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
            if (e->d_name[0] == '.')
                continue;
            char **nv = realloc(names, (nn + 1) * sizeof *names);
            if (!nv)
                break;
            names = nv;
            names[nn] = malloc(strlen(argv[i]) + strlen(e->d_name) + 2);
            if (names[nn])
                sprintf(names[nn++], "%s/%s", argv[i], e->d_name);
        }
        if (d)
            closedir(d);
        qsort(names, nn, sizeof *names, cmp_str);
        for (size_t k = 0; k < nn; k++) {
            struct stat fs;
            if (stat(names[k], &fs) == 0 && S_ISREG(fs.st_mode)) {
                bad |= run_file(names[k]) != 0;
                done++;
            }
            free(names[k]);
        }
        free(names);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf /dev/shm/fz-*-%d /dev/shm/fz-*-%d.*", (int)getpid(), (int)getpid());
    if (system(cmd) != 0)
        fprintf(stderr, "replay: could not remove the scratch files in /dev/shm\n");
    printf("%zu inputs replayed%s\n", done, bad ? ", some could not be read" : "");
    return bad ? 1 : 0;
}
