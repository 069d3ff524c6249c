/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A main() for the fuzz targets when libFuzzer is not there (GCC, or any
 * build without LURK_FUZZ): runs LLVMFuzzerTestOneInput once on every file
 * named, or in the directories named. So the committed corpora, crash
 * reproducers included, are regression tests of every build, sanitized or
 * not.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (cap - len < 4096) {
            unsigned char *grown = realloc(buf, cap = cap ? cap * 2 : 8192);

            if (grown == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = grown;
        }
        if ((n = fread(buf + len, 1, cap - len, f)) == 0)
            break;
        len += n;
    }
    fclose(f);
    /* An exact-size copy, so that ASan sees a read past the input. */
    unsigned char *exact = malloc(len ? len : 1);

    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    int rv = 0;

    if (d == NULL) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char **grown;

        if (e->d_name[0] == '.')
            continue;
        if ((grown = realloc(names, (n + 1) * sizeof(*names))) == NULL) {
            rv = -1;
            break;
        }
        names = grown;
        if ((names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2)) == NULL) {
            rv = -1;
            break;
        }
        sprintf(names[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp);
    for (size_t i = 0; i < n; i++) {
        if (rv == 0 && run_file(names[i]) != 0)
            rv = -1;
        free(names[i]);
        (*count)++;
    }
    free(names);
    return rv;
}

int main(int argc, char **argv)
{
    size_t count = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) != 0)
                return 1;
        } else {
            if (run_file(argv[i]) != 0)
                return 1;
            count++;
        }
    }
    if (count == 0) {
        fprintf(stderr, "usage: %s FILE-OR-DIR... (no input found)\n", argv[0]);
        return 1;
    }
    printf("%zu inputs replayed, no crash\n", count);
    return 0;
}
