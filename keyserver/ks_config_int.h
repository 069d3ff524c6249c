/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to configuration parsing: what ks_config.c, ks_config_scan.c and
 * ks_config_groups.c share. Not installed; included by those three files
 * (and their unit tests) only. Everything not named here is static.
 */
#ifndef KS_CONFIG_INT_H
#define KS_CONFIG_INT_H

#include <stddef.h>

#include <openssl/conf.h>

#include "ks_config.h"

#define KS_MAIN        "keyserver"
#define KS_EDGE_PREFIX "edge."

/* ---- the line scanner (ks_config_scan.c) -------------------------------- */

/* One assignment seen in the text: section::name on `line`. */
typedef struct {
    char *section;
    char *name;
    long line;
} ks_scan_entry;

typedef struct {
    ks_scan_entry *v;
    size_t n;
    size_t cap;
    long include_line; /* first .include directive, 0 if none */
} ks_scan;

/* "NAME:LINE: message" (or "NAME: message" for line 0) into err. */
void ks_config_errf(char *err, size_t errlen, const char *name, long line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Record every assignment of `text`; -1 only when out of memory. */
int ks_scan_text(ks_scan *s, const char *text, size_t len);
void ks_scan_free(ks_scan *s);
/* Line of the first (nth = 0) or a later assignment of section::name; 0 if none. */
long ks_scan_find(const ks_scan *s, const char *section, const char *name, size_t nth);
/* Line of the assignment NCONF kept (the last one); 0 if none. */
long ks_scan_last(const ks_scan *s, const char *section, const char *name);
/* First name assigned twice in `section` (its second entry), first line in *first. */
const ks_scan_entry *ks_scan_duplicate(const ks_scan *s, const char *section, long *first);

/* ---- values (ks_config_scan.c) ------------------------------------------ */

/* The path inside a file: URI, NULL if `s` is not one. */
const char *ks_config_file_uri_path(const char *s);
/* `path` relative to `basedir` unless absolute; a new string, NULL when out of memory. */
char *ks_config_resolve(const char *basedir, const char *path);
/* Worker threads for workers = 0: a few per online CPU, within the limits. */
unsigned int ks_config_auto_workers(void);

/* ---- one parse (ks_config.c) --------------------------------------------- */

typedef struct {
    const char *text_name; /* for messages */
    const char *basedir;
    CONF *conf;
    ks_scan scan;
    STACK_OF(CONF_VALUE) * main;
    char *err;
    size_t errlen;
} ks_parse;

/* A setting of one section, never one inherited from [default]; NULL if unset or empty. */
const char *ks_sect_get(STACK_OF(CONF_VALUE) * sect, const char *name);
/* The same for [keyserver], and the line it was set on. */
const char *ks_main_get(const ks_parse *p, const char *name);
long ks_main_line(const ks_parse *p, const char *name);
/* A path setting of [keyserver] resolved against the config's directory; NULL if unset. */
int ks_main_path(ks_parse *p, const char *name, char **out);
/* A decimal setting of `section` from min to max, `dflt` when absent; -1 with a message. */
int ks_sect_uint(ks_parse *p, STACK_OF(CONF_VALUE) * sect, const char *section, const char *name,
                 unsigned long dflt, unsigned long min, unsigned long max, unsigned long *out);

/* ---- edge groups (ks_config_groups.c) ------------------------------------ */

/* Distinct [edge.*] section names in order of appearance (pointers into p->scan). */
int ks_groups_discover(const ks_parse *p, const char ***names, size_t *n);
/* The [edge.*] form: one group per section, listeners unioned into cfg->listen. */
int ks_groups_parse(ks_parse *p, ks_config *cfg, const char **names, size_t n);
/* The single-[keyserver] form: one group with every key. */
int ks_group_implicit(ks_parse *p, ks_config *cfg);
/* Once keys are parsed: every granted key exists; [key_limits] names known keys. */
int ks_groups_check_keys(ks_parse *p, ks_config *cfg);
/* Warn about sections nothing reads: a typo there would go unnoticed. */
void ks_config_warn_sections(const ks_parse *p, const ks_config *cfg);

#endif /* KS_CONFIG_INT_H */
