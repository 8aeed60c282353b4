/* Configuration loading: the file read with libconfig, ${VAR} substitution, and one walker that
 * reads every group through its table in common/config_schema.c (defaults, unknown keys, types,
 * ranges, enum names). What airouter's keys are and mean lives in the tables, not here. */
#include "common/config.h"
#include "common/config_schema.h"
#include "common/buf.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef cfg_loader_t loader_t;

int cfg_fail(loader_t *ld, const config_setting_t *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = s ? config_setting_source_line(s) : 0;
    if (line > 0)
        snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->path, line, msg);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->path, msg);
    return -1;
}

char *cfg_expand_env(const char *in, char *missing, size_t missinglen)
{
    size_t cap = strlen(in) + 1, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = in; *p;) {
        const char *val = NULL;
        size_t vlen = 0, skip = 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (end) {
                char name[256];
                const char *def = NULL;
                size_t nlen = (size_t)(end - (p + 2));
                const char *colon = memchr(p + 2, ':', nlen);
                if (colon && colon[1] == '-') {
                    def = colon + 2;
                    nlen = (size_t)(colon - (p + 2));
                }
                if (nlen == 0 || nlen >= sizeof name) {
                    val = p;
                    vlen = 1;
                } else {
                    memcpy(name, p + 2, nlen);
                    name[nlen] = '\0';
                    const char *env = getenv(name);
                    if (env && (env[0] || !def)) {
                        val = env;
                        vlen = strlen(env);
                    } else if (def) {
                        val = def;
                        vlen = (size_t)(end - def);
                    } else {
                        if (missing)
                            snprintf(missing, missinglen, "%s", name);
                        free(out);
                        return NULL;
                    }
                    skip = (size_t)(end - p) + 1;
                }
            }
        }
        if (!val) {
            val = p;
            vlen = 1;
        }
        if (len + vlen + 1 > cap) {
            while (len + vlen + 1 > cap)
                cap *= 2;
            char *n = realloc(out, cap);
            if (!n) {
                free(out);
                return NULL;
            }
            out = n;
        }
        memcpy(out + len, val, vlen);
        len += vlen;
        p += skip;
    }
    out[len] = '\0';
    return out;
}

bool cfg_glob_match(const char *pat, const char *s)
{
    /* Iterative matcher with single-star backtracking: linear in practice. */
    const char *star = NULL, *mark = NULL;
    while (*s) {
        if (*pat == '*') { /* before the literal test: a name may contain '*' itself */
            star = pat++;
            mark = s;
        } else if (*pat == '?' || *pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++mark;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

#define AT(type, obj, off) (*(type *)(void *)((obj) + (off)))

int cfg_check_keys(loader_t *ld, const config_setting_t *group, const char *where, const cfg_field_t *fields)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        config_setting_t *c = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(c);
        const cfg_field_t *f = fields;
        while (f->name && !(name && strcmp(name, f->name) == 0))
            f++;
        if (!f->name)
            return cfg_fail(ld, c, "unknown key '%s' in %s", name ? name : "?", where);
    }
    return 0;
}

int cfg_read_string(loader_t *ld, const config_setting_t *s, const char *key, char **out)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_fail(ld, s, "'%s' must be a string", key);
    char missing[256];
    char *v = cfg_expand_env(config_setting_get_string(s), missing, sizeof missing);
    if (!v)
        return cfg_fail(ld, s, "'%s': environment variable %s is not set", key, missing);
    free(*out);
    *out = v;
    return 0;
}

int cfg_read_strings(loader_t *ld, const config_setting_t *s, const char *key, char ***out, int *count)
{
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return cfg_fail(ld, s, "'%s' must be a list of strings", key);
    int n = config_setting_length(s);
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v)
        return cfg_fail(ld, s, "out of memory");
    *out = v;
    *count = n;
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return cfg_fail(ld, e, "'%s' must be a list of strings", key);
        char missing[256];
        v[i] = cfg_expand_env(config_setting_get_string(e), missing, sizeof missing);
        if (!v[i])
            return cfg_fail(ld, e, "'%s': environment variable %s is not set", key, missing);
    }
    return 0;
}

/* Integers of every width the structs use; bool for one byte. */
static void store_int(char *p, size_t size, long long v)
{
    if (size == sizeof(long long)) {
        memcpy(p, &v, sizeof v);
    } else if (size == sizeof(int)) {
        int i = (int)v;
        memcpy(p, &i, sizeof i);
    } else {
        *(bool *)(void *)p = v != 0;
    }
}

/* An integer or a float setting as a double; -1 for any other type. */
static int setting_number(const config_setting_t *s, double *v)
{
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        *v = (double)config_setting_get_int64(s);
    else if (t == CONFIG_TYPE_FLOAT)
        *v = config_setting_get_float(s);
    else
        return -1;
    return 0;
}

static int read_number(loader_t *ld, const config_setting_t *s, const cfg_field_t *f, double *out)
{
    double v;
    if (setting_number(s, &v) < 0)
        return cfg_fail(ld, s, "'%s' must be %s", f->name, f->type == CFG_SECONDS ? "a number of seconds" : "a number");
    if (f->type == CFG_AMOUNT && !(v >= 0 && v <= f->dmax))
        return cfg_fail(ld, s, "'%s' must be from 0 to %g", f->name, f->dmax);
    if (f->type != CFG_AMOUNT && !(v > 0 && v <= f->dmax))
        return cfg_fail(ld, s, "'%s' must be more than 0 and at most %g%s", f->name, f->dmax,
                        f->type == CFG_SECONDS ? " seconds" : "");
    *out = v;
    return 0;
}

static int read_int(loader_t *ld, const config_setting_t *s, const cfg_field_t *f, char *p)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return cfg_fail(ld, s, "'%s' must be an integer", f->name);
    long long v = config_setting_get_int64(s);
    if (v < f->min || v > f->max)
        return cfg_fail(ld, s, "'%s' must be between %lld and %lld", f->name, f->min, f->max);
    store_int(p, f->size, v);
    return 0;
}

static int read_bool(loader_t *ld, const config_setting_t *s, const cfg_field_t *f, char *p)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return cfg_fail(ld, s, "'%s' must be true or false", f->name);
    store_int(p, f->size, config_setting_get_bool(s));
    return 0;
}

static int name_index(const cfg_field_t *f, const char *name)
{
    for (int i = 0; i < f->nnames; i++)
        if (f->names[i] && strcmp(name, f->names[i]) == 0)
            return i;
    return -1;
}

static int read_enum(loader_t *ld, const config_setting_t *s, const cfg_field_t *f, char *obj, const char *self)
{
    char *name = NULL;
    if (cfg_read_string(ld, s, f->name, &name) < 0)
        return -1;
    int v = name_index(f, name);
    free(name);
    if (v < 0)
        return f->flags & CFG_OWNER_MSG ? cfg_fail(ld, s, "%s: %s", self, f->msg) : cfg_fail(ld, s, "%s", f->msg);
    store_int(obj + f->off, f->size, v);
    return 0;
}

static int read_flags(loader_t *ld, const config_setting_t *s, const cfg_field_t *f, char *obj)
{
    char **names = NULL;
    int n = 0, rc = cfg_read_strings(ld, s, f->name, &names, &n);
    unsigned bits = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        int v = name_index(f, names[i]);
        if (v < 0) {
            char known[256] = "";
            for (int k = 0; k < f->nnames; k++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "", f->names[k]);
            rc = cfg_fail(ld, s, "%s '%s' (known: %s)", f->msg, names[i], known);
        } else {
            bits |= 1u << v;
        }
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    if (rc == 0)
        AT(unsigned, obj, f->off) = bits;
    return rc;
}

/* Reads setting s into field f of obj (a scalar, a string or a list of strings). */
static int read_field(loader_t *ld, const config_setting_t *s, const cfg_field_t *f, char *obj, const char *self)
{
    char *p = obj + f->off;
    switch (f->type) {
    case CFG_STRING:
        if (cfg_read_string(ld, s, f->name, (char **)(void *)p) < 0)
            return -1;
        if ((f->flags & CFG_EMPTY_UNSET) && !AT(char *, obj, f->off)[0]) {
            free(AT(char *, obj, f->off));
            AT(char *, obj, f->off) = NULL;
        }
        return 0;
    case CFG_STRINGS: return cfg_read_strings(ld, s, f->name, (char ***)(void *)p, &AT(int, obj, f->count_off));
    case CFG_INT: return read_int(ld, s, f, p);
    case CFG_SECONDS:
    case CFG_FRACTION:
    case CFG_AMOUNT: return read_number(ld, s, f, (double *)(void *)p);
    case CFG_BOOL:
    case CFG_TRISTATE: return read_bool(ld, s, f, p);
    case CFG_ENUM: return read_enum(ld, s, f, obj, self);
    case CFG_FLAGS: return read_flags(ld, s, f, obj);
    default: return 0;
    }
}

static int set_default(loader_t *ld, const cfg_field_t *f, char *obj)
{
    char *p = obj + f->off;
    switch (f->type) {
    case CFG_STRING:
        if (f->sdef && !(AT(char *, obj, f->off) = strdup(f->sdef)))
            return cfg_fail(ld, NULL, "out of memory");
        return 0;
    case CFG_INT:
    case CFG_BOOL:
    case CFG_TRISTATE:
    case CFG_ENUM:
    case CFG_FLAGS: store_int(p, f->size, f->idef); return 0;
    case CFG_SECONDS:
    case CFG_FRACTION:
    case CFG_AMOUNT: AT(double, obj, f->off) = f->ddef; return 0;
    default: return 0;
    }
}

/* What a group calls itself in messages: "backend 'x'" once it has a name, else where. */
static void self_label(const cfg_group_t *grp, const char *obj, const char *where, char *out, size_t len)
{
    const char *name = NULL;
    for (const cfg_field_t *f = grp->fields; grp->label && f->name; f++)
        if (f->type == CFG_STRING && strcmp(f->name, "name") == 0)
            name = *(char *const *)(const void *)(obj + f->off);
    if (name && name[0])
        snprintf(out, len, "%s '%s'", grp->label, name);
    else
        snprintf(out, len, "%s", where);
}

static int walk_subgroup(loader_t *ld, const config_setting_t *s, const cfg_field_t *f, char *obj, const char *owner)
{
    char where[600];
    snprintf(where, sizeof where, "%s%s%s", f->flags & CFG_OWNED ? owner : "", f->flags & CFG_OWNED ? " " : "",
             f->name);
    if (!s)
        return f->flags & CFG_PRESENCE ? 0 : cfg_walk_group(ld, NULL, f->group, obj + f->off, where, owner);
    if (!config_setting_is_group(s))
        return f->flags & CFG_OWNED ? cfg_fail(ld, s, "%s must be a group %s", where, f->group->shape)
                                    : cfg_fail(ld, s, "'%s' must be a group %s", f->name, f->group->shape);
    return cfg_walk_group(ld, s, f->group, obj + f->off, where, owner);
}

int cfg_walk_list(loader_t *ld, const config_setting_t *parent, const cfg_field_t *f, char *obj, const char *owner)
{
    const config_setting_t *list = config_setting_get_member(parent, f->name);
    if (!list)
        return f->flags & CFG_REQUIRED ? cfg_fail(ld, NULL, "no '%s' defined", f->name) : 0;
    const char *pre = f->flags & CFG_OWNER_MSG ? owner : "", *sep = pre[0] ? ": " : "";
    if (!config_setting_is_list(list) && ((f->flags & CFG_LISTS_ONLY) || !config_setting_is_array(list)))
        return cfg_fail(ld, list, "%s%s%s", pre, sep, f->msg);
    int n = config_setting_length(list);
    if (n == 0 && f->empty)
        return cfg_fail(ld, list, "%s%s%s", pre, sep, f->empty);
    char *elems = calloc((size_t)n + 1, f->group->size);
    if (!elems)
        return cfg_fail(ld, list, "out of memory");
    AT(char *, obj, f->off) = elems;
    AT(int, obj, f->count_off) = n;
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        char where[160];
        if (snprintf(where, sizeof where, "%s%s%s[%d]", f->flags & CFG_OWNED ? owner : "",
                     f->flags & CFG_OWNED ? " " : "", f->name, i) >= (int)sizeof where)
            where[sizeof where - 1] = '\0'; /* a very long name: cut */
        if (!config_setting_is_group(g))
            return cfg_fail(ld, g, "%s must be a group %s", where, f->group->shape);
        if (cfg_walk_group(ld, g, f->group, elems + (size_t)i * f->group->size, where, owner) < 0)
            return -1;
    }
    return 0;
}

int cfg_walk_fields(loader_t *ld, const config_setting_t *g, const cfg_group_t *grp, char *obj, const char *where)
{
    for (const cfg_field_t *f = grp->fields; f->name; f++) {
        if (f->type == CFG_CUSTOM || (f->flags & CFG_BY_HOOK))
            continue;
        const config_setting_t *s = g ? config_setting_get_member(g, f->name) : NULL;
        char self[512] = "";
        if (f->type == CFG_GROUP || f->type == CFG_LIST || (f->flags & CFG_OWNER_MSG))
            self_label(grp, obj, where, self, sizeof self);
        int rc;
        if (f->type == CFG_GROUP)
            rc = walk_subgroup(ld, s, f, obj, self);
        else if (f->type == CFG_LIST)
            rc = g ? cfg_walk_list(ld, g, f, obj, self) : 0;
        else
            rc = set_default(ld, f, obj) < 0 || (s && read_field(ld, s, f, obj, self) < 0) ? -1 : 0;
        if (rc < 0 || (f->check && f->check(ld, s, obj, f) < 0))
            return -1;
    }
    return 0;
}

int cfg_walk_group(loader_t *ld, const config_setting_t *g, const cfg_group_t *grp, char *obj, const char *where,
                   const char *owner)
{
    if (g && cfg_check_keys(ld, g, where, grp->fields) < 0)
        return -1;
    if (cfg_walk_fields(ld, g, grp, obj, where) < 0)
        return -1;
    return g && grp->check ? grp->check(ld, g, obj, where, owner) : 0;
}

void cfg_free_group(const cfg_group_t *grp, char *obj)
{
    for (const cfg_field_t *f = grp->fields; f->name; f++) {
        switch (f->type) {
        case CFG_STRING: free(AT(char *, obj, f->off)); break;
        case CFG_STRINGS: {
            char **v = AT(char **, obj, f->off);
            for (int i = 0; v && i < AT(int, obj, f->count_off); i++)
                free(v[i]);
            free(v);
            break;
        }
        case CFG_GROUP: cfg_free_group(f->group, obj + f->off); break;
        case CFG_LIST: {
            char *elems = AT(char *, obj, f->off);
            for (int i = 0; elems && i < AT(int, obj, f->count_off); i++)
                cfg_free_group(f->group, elems + (size_t)i * f->group->size);
            free(elems);
            break;
        }
        default: break;
        }
    }
}

/* libconfig 1.5 silently truncates an integer literal beyond 32 bits unless it ends in L
 * (tpm = 5000000000 would load as 705032704). Returns a copy of text in which every such
 * literal outside strings and comments has its L, so large limits mean what they say;
 * lines keep their numbers. NULL when out of memory. */
static char *widen_large_integers(const char *text, size_t len)
{
    char *out = malloc(len + len / 2 + 2), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '"') { /* a string, with its escapes */
            *o++ = text[i++];
            while (i < len && text[i] != '"') {
                if (text[i] == '\\' && i + 1 < len)
                    *o++ = text[i++];
                *o++ = text[i++];
            }
            if (i < len)
                *o++ = text[i++];
        } else if (c == '#' || (c == '/' && i + 1 < len && text[i + 1] == '/')) {
            while (i < len && text[i] != '\n')
                *o++ = text[i++];
        } else if (c == '/' && i + 1 < len && text[i + 1] == '*') {
            *o++ = text[i++];
            *o++ = text[i++];
            while (i < len && !(text[i] == '*' && i + 1 < len && text[i + 1] == '/'))
                *o++ = text[i++];
        } else if (c >= '0' && c <= '9' &&
                   (i == 0 || !(isalnum((unsigned char)text[i - 1]) || text[i - 1] == '_' || text[i - 1] == '.'))) {
            size_t start = i;
            bool hex = c == '0' && i + 1 < len && (text[i + 1] == 'x' || text[i + 1] == 'X');
            if (hex)
                i += 2;
            while (i < len && (hex ? isxdigit((unsigned char)text[i]) : isdigit((unsigned char)text[i])))
                i++;
            bool integer = i >= len || !(isalnum((unsigned char)text[i]) || text[i] == '_' || text[i] == '.');
            errno = 0;
            unsigned long long v = strtoull(text + start, NULL, hex ? 16 : 10);
            bool wide = v > 2147483647ULL || errno == ERANGE;
            memcpy(o, text + start, i - start);
            o += i - start;
            if (integer && wide)
                *o++ = 'L';
        } else {
            *o++ = text[i++];
        }
    }
    *o = '\0';
    return out;
}

/* The file's text with large integers widened, or NULL with errno set. */
static char *read_config_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    buf_t raw = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&raw, chunk, n);
    int failed = ferror(f);
    fclose(f);
    char *text = failed ? NULL : widen_large_integers(raw.data ? raw.data : "", raw.len);
    buf_free(&raw);
    if (failed)
        errno = EIO;
    return text;
}

int cfg_parse_redis_url(const char *url, char **host, int *port, char **user, char **password, int *db, char *err,
                        size_t errlen)
{
    *host = *user = *password = NULL;
    *port = 6379;
    *db = 0;
    if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen,
                 "asks for TLS (rediss://), which this build of airouter cannot do (hiredis %d.%d, without TLS): "
                 "use redis:// on a private network, or through a TLS tunnel (stunnel, spiped)",
                 HIREDIS_MAJOR, HIREDIS_MINOR);
        return -1;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "must start with redis://");
        return -1;
    }
    const char *p = url + 8, *end = p + strcspn(p, "/?#");
    const char *at = memrchr(p, '@', (size_t)(end - p));
    if (at) { /* [user]:password@ or password@ */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                *user = strndup(p, (size_t)(colon - p));
            *password = strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            *password = strndup(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *hend = end;
    if (*p == '[') { /* [v6]:port */
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            goto bad;
        *host = strndup(p + 1, (size_t)(close - p - 1));
        hend = close + 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        *host = strndup(p, (size_t)(hend - p));
    }
    if (!*host || !**host)
        goto bad;
    if (hend < end) {
        if (*hend != ':' || hend + 1 == end)
            goto bad;
        char *e;
        long v = strtol(hend + 1, &e, 10);
        if (e != end || v < 1 || v > 65535)
            goto bad;
        *port = (int)v;
    }
    if (*end == '/' && end[1]) {
        char *e;
        long v = strtol(end + 1, &e, 10);
        if (*e || v < 0 || v > 1000000)
            goto bad;
        *db = (int)v;
    } else if (*end && *end != '/') {
        goto bad;
    }
    return 0;
bad:
    snprintf(err, errlen, "must be redis://[[user]:password@]host[:port][/db]");
    free(*host);
    free(*user);
    free(*password);
    *host = *user = *password = NULL;
    return -1;
}

cfg_t *cfg_load(const char *path, char *err, size_t errlen)
{
    loader_t ld = {path, err, errlen, NULL};
    config_t lc;
    cfg_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    ld.cfg = cfg;
    config_init(&lc);
    char *text = read_config_text(path);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read file: %s", path, strerror(errno));
        goto fail;
    }
    int parsed = config_read_string(&lc, text);
    free(text);
    if (!parsed) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read file: %s", path, strerror(errno));
        else
            snprintf(err, errlen, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
                     config_error_line(&lc), config_error_text(&lc));
        goto fail;
    }
    cfg->path = strdup(path);
    cfg->loaded_at = (long)time(NULL);
    if (!cfg->path ||
        cfg_walk_group(&ld, config_root_setting(&lc), &cfg_schema_top, (char *)cfg, "the top level", "") < 0)
        goto fail;
    config_destroy(&lc);
    return cfg;
fail:
    config_destroy(&lc);
    cfg_free(cfg);
    return NULL;
}
