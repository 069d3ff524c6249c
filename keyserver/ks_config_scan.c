/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration parsing, the lower half: error messages, the line scanner
 * that learns which names each section assigns and on which line (NCONF
 * cannot tell, see ks_config.c), and the parsing of single values.
 */
#include "ks_config_int.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- messages ---------------------------------------------------------- */

void ks_config_errf(char *err, size_t errlen, const char *name, long line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err == NULL || errlen == 0)
        return;
    if (line > 0)
        n = snprintf(err, errlen, "%s:%ld: ", name, line);
    else
        n = snprintf(err, errlen, "%s: ", name);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- the line scanner -------------------------------------------------- */

void ks_scan_free(ks_scan *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].section);
        free(s->v[i].name);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int ks_scan_add(ks_scan *s, const char *section, const char *name, size_t namelen, long line)
{
    ks_scan_entry *e;

    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        ks_scan_entry *v = realloc(s->v, cap * sizeof(*v));

        if (v == NULL)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    e = &s->v[s->n];
    e->section = strdup(section);
    e->name = strndup(name, namelen);
    e->line = line;
    if (e->section == NULL || e->name == NULL) {
        free(e->section);
        free(e->name);
        return -1;
    }
    s->n++;
    return 0;
}

static int ks_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Cut a '#' comment the way NCONF does: not inside quotes, not escaped. */
static void ks_scan_strip_comment(char *p)
{
    for (; *p != '\0'; p++) {
        if (*p == '\\') {
            if (p[1] == '\0')
                return;
            p++;
        } else if (*p == '"' || *p == '\'') {
            char q = *p;

            for (p++; *p != '\0' && *p != q; p++)
                if (*p == '\\' && p[1] != '\0')
                    p++;
            if (*p == '\0')
                return;
        } else if (*p == '#') {
            *p = '\0';
            return;
        }
    }
}

static char *ks_trim(char *s)
{
    size_t n;

    while (ks_is_ws(*s))
        s++;
    n = strlen(s);
    while (n > 0 && ks_is_ws(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One logical line (continuations joined), starting on line `line`. */
static int ks_scan_line(ks_scan *s, char *buf, long line, char **section)
{
    char *p, *name, *sep;
    char *sect;

    ks_scan_strip_comment(buf);
    p = ks_trim(buf);
    if (*p == '\0')
        return 0;
    if (*p == '[') {
        char *end = strchr(p, ']');
        char *copy;

        if (end == NULL)
            return 0; /* NCONF reports it */
        *end = '\0';
        if ((copy = strdup(ks_trim(p + 1))) == NULL)
            return -1;
        free(*section);
        *section = copy;
        return 0;
    }
    if (strncmp(p, ".include", 8) == 0 && (ks_is_ws(p[8]) || p[8] == '=')) {
        if (s->include_line == 0)
            s->include_line = line;
        return 0;
    }
    if (strncmp(p, ".pragma", 7) == 0 && (ks_is_ws(p[7]) || p[7] == '='))
        return 0;
    /*
     * The name ends at white space or '='. Escapes are rare in names; take
     * the escaped character as NCONF does, so a cross-check can compare.
     */
    name = p;
    {
        char *w = p;

        for (; *p != '\0' && !ks_is_ws(*p) && *p != '='; p++) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            *w++ = *p;
        }
        if (*p != '\0')
            p++;
        *w = '\0';
    }
    sect = *section;
    if ((sep = strstr(name, "::")) != NULL) {
        *sep = '\0';
        sect = name;
        name = sep + 2;
    }
    return ks_scan_add(s, sect, name, strlen(name), line);
}

int ks_scan_text(ks_scan *s, const char *text, size_t len)
{
    char *logical = NULL, *section = strdup("default");
    size_t lsize = 0, llen = 0;
    long lineno = 0, start = 0;
    size_t pos = 0;
    int rv = -1;

    if (section == NULL)
        return -1;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t plen = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        const char *phys = text + pos;
        int cont = 0;

        pos += plen + (nl != NULL);
        lineno++;
        if (llen == 0)
            start = lineno;
        while (plen > 0 && phys[plen - 1] == '\r')
            plen--;
        /* A line ending in one backslash continues; "\\\\" is an escaped one. */
        if (plen > 0 && phys[plen - 1] == '\\' && (plen < 2 || phys[plen - 2] != '\\')) {
            plen--;
            cont = 1;
        }
        if (llen + plen + 1 > lsize) {
            size_t nsize = (llen + plen + 1) * 2;
            char *grown = realloc(logical, nsize);

            if (grown == NULL)
                goto out;
            logical = grown;
            lsize = nsize;
        }
        memcpy(logical + llen, phys, plen);
        llen += plen;
        logical[llen] = '\0';
        if (cont && pos < len)
            continue;
        if (ks_scan_line(s, logical, start, &section) != 0)
            goto out;
        llen = 0;
    }
    rv = 0;
out:
    free(logical);
    free(section);
    return rv;
}

/* Line of the first (nth = 0) or a later assignment of section::name. */
long ks_scan_find(const ks_scan *s, const char *section, const char *name, size_t nth)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].section, section) == 0 && strcmp(s->v[i].name, name) == 0 && nth-- == 0)
            return s->v[i].line;
    return 0;
}

/* Line of the assignment NCONF kept: the last one. */
long ks_scan_last(const ks_scan *s, const char *section, const char *name)
{
    long line = 0;

    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].section, section) == 0 && strcmp(s->v[i].name, name) == 0)
            line = s->v[i].line;
    return line;
}

/* First name assigned twice in `section`, with both lines. */
const ks_scan_entry *ks_scan_duplicate(const ks_scan *s, const char *section, long *first)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].section, section) != 0)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->v[j].section, section) == 0 && strcmp(s->v[j].name, s->v[i].name) == 0) {
                *first = s->v[j].line;
                return &s->v[i];
            }
        }
    }
    return NULL;
}

/* ---- values ------------------------------------------------------------ */

static int ks_config_scheme_len(const char *s)
{
    int n = 0;

    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (n = 1; s[n] != '\0' && s[n] != ':'; n++) {
        char c = s[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+'
              || c == '-' || c == '.'))
            return 0;
    }
    return s[n] == ':' ? n : 0;
}

/* The path inside a file: URI (file:/p, file:///p, file://localhost/p). */
const char *ks_config_file_uri_path(const char *s)
{
    if (strncasecmp(s, "file:", 5) != 0)
        return NULL;
    s += 5;
    if (strncmp(s, "//", 2) == 0) {
        s += 2;
        if (strncasecmp(s, "localhost", 9) == 0)
            s += 9;
        return *s == '/' ? s : NULL;
    }
    return s;
}

int ks_config_source_is_path(const char *source)
{
    if (source[0] == '/' || source[0] == '.')
        return 1;
    if (ks_config_scheme_len(source) == 0)
        return 1;
    return ks_config_file_uri_path(source) != NULL;
}

char *ks_config_resolve(const char *basedir, const char *path)
{
    char *out;
    size_t n;

    if (path[0] == '/' || basedir == NULL || basedir[0] == '\0')
        return strdup(path);
    while (path[0] == '.' && path[1] == '/')
        path += 2 + strspn(path + 2, "/"); /* "./x" is "x", and reads better in logs */
    n = strlen(basedir) + 1 + strlen(path) + 1;
    if ((out = malloc(n)) != NULL)
        snprintf(out, n, "%s%s%s", basedir, basedir[strlen(basedir) - 1] == '/' ? "" : "/", path);
    return out;
}

unsigned int ks_config_auto_workers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long w;

    if (cpus < 1)
        cpus = 1;
    /*
     * Workers block in a signature, never in I/O (nng does that on its own
     * threads), so a few per core keep every core busy while some threads
     * are between messages.
     */
    w = 4ul * (unsigned long)cpus;
    if (w < 4)
        w = 4;
    if (w > KS_CONFIG_MAX_WORKERS)
        w = KS_CONFIG_MAX_WORKERS;
    return (unsigned int)w;
}
