/* airouter -T: a loaded configuration printed back in libconfig syntax, every effective value
 * and default included, secrets masked. The output is itself a valid configuration (`-t`
 * accepts it) and dumping it again gives the same text.
 *
 * Each group is a table of fields; adding a key to the schema is one line in its table. */
#include "common/config_dump.h"
#include "common/config_schema.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MASK "********"

typedef struct {
    FILE *out;
    const cfg_t *cfg;
    int depth;
} dump_t;

typedef struct field field_t;
/* Prints field f of obj (or nothing when the value is "not set"). */
typedef void (*put_fn)(dump_t *d, const field_t *f, const char *obj);

struct field {
    const char *name;
    put_fn put;
    size_t off;             /* the value's offset in obj (a group's or list's: where it starts) */
    const field_t *sub;     /* group and list members */
    size_t count_off;       /* lists and string arrays: offset of the int count */
    size_t elem_size;       /* lists: size of one element */
    const char *also;       /* keys a custom printer writes besides name, space-separated */
    const char *const *names; /* enums and bit sets: the schema's names (common/config_schema.h) */
    int nnames;
};

static void indent(dump_t *d)
{
    for (int i = 0; i < d->depth; i++)
        fputs("  ", d->out);
}

/* s[0..len) as the inside of a libconfig string. */
static void put_escaped(dump_t *d, const char *s, size_t len)
{
    for (const unsigned char *p = (const unsigned char *)s; p < (const unsigned char *)s + len; p++) {
        switch (*p) {
        case '"': fputs("\\\"", d->out); break;
        case '\\': fputs("\\\\", d->out); break;
        case '\n': fputs("\\n", d->out); break;
        case '\r': fputs("\\r", d->out); break;
        case '\t': fputs("\\t", d->out); break;
        case '\f': fputs("\\f", d->out); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(d->out, "\\x%02x", *p);
            else
                fputc(*p, d->out);
        }
    }
}

static void put_quoted(dump_t *d, const char *s)
{
    fputc('"', d->out);
    put_escaped(d, s, strlen(s));
    fputc('"', d->out);
}

static void key_string(dump_t *d, const char *name, const char *value)
{
    indent(d);
    fprintf(d->out, "%s = ", name);
    put_quoted(d, value);
    fputs(";\n", d->out);
}

/* libconfig ints are 32-bit unless written with an L suffix. */
static void key_int(dump_t *d, const char *name, long long v)
{
    indent(d);
    fprintf(d->out, v > INT32_MAX || v < INT32_MIN ? "%s = %lldL;\n" : "%s = %lld;\n", name, v);
}

static void key_bool(dump_t *d, const char *name, bool v)
{
    indent(d);
    fprintf(d->out, "%s = %s;\n", name, v ? "true" : "false");
}

/* The shortest text that reads back as the same double, always with a '.' or an exponent. */
static void key_double(dump_t *d, const char *name, double v)
{
    char text[64] = "";
    if (v == (double)(long long)v && v > -1e15 && v < 1e15)
        snprintf(text, sizeof text, "%.1f", v);
    for (int prec = 1; !text[0] && prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) != v)
            text[0] = '\0';
    }
    if (!strpbrk(text, ".eEn"))
        strcat(text, ".0");
    indent(d);
    fprintf(d->out, "%s = %s;\n", name, text);
}

static void key_strings(dump_t *d, const char *name, char *const *v, int n)
{
    indent(d);
    fprintf(d->out, "%s = [", name);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : " ", d->out);
        put_quoted(d, v[i]);
    }
    fputs(n ? " ];\n" : "];\n", d->out);
}

#define AT(type, obj, off) (*(type const *)(const void *)((obj) + (off)))

/* The schema as printed. Each line: key, printer, offset (and, for groups and lists, members). */
#define F(st, key, printer, member) {.name = key, .put = printer, .off = offsetof(st, member)}
#define LIST(st, key, member, count, members, elem)                                                             \
    {.name = key, .put = put_list, .off = offsetof(st, member), .sub = members, .count_off = offsetof(st, count), \
     .elem_size = sizeof(elem)}
#define STRS(st, key, printer, member, count) \
    {.name = key, .put = printer, .off = offsetof(st, member), .count_off = offsetof(st, count)}
#define GROUP(key, offset, members) {.name = key, .put = put_group, .off = offset, .sub = members}
#define CUSTOM(key, printer, also_prints) {.name = key, .put = printer, .also = also_prints}
#define ENUM(st, key, printer, member, nm) \
    {.name = key, .put = printer, .off = offsetof(st, member), .names = nm, .nnames = (int)(sizeof nm / sizeof nm[0])}

/* Plain values. */
static void put_str(dump_t *d, const field_t *f, const char *o)
{
    const char *s = AT(char *, o, f->off);
    if (s)
        key_string(d, f->name, s);
}
/* A string whose "" means off: printed even when not set. */
static void put_str_or_empty(dump_t *d, const field_t *f, const char *o)
{
    const char *s = AT(char *, o, f->off);
    key_string(d, f->name, s ? s : "");
}
static void put_int(dump_t *d, const field_t *f, const char *o) { key_int(d, f->name, AT(int, o, f->off)); }
static void put_long(dump_t *d, const field_t *f, const char *o) { key_int(d, f->name, AT(long, o, f->off)); }
static void put_size(dump_t *d, const field_t *f, const char *o)
{
    key_int(d, f->name, (long long)AT(size_t, o, f->off));
}
/* An int whose 0 means "not set". */
static void put_int_set(dump_t *d, const field_t *f, const char *o)
{
    if (AT(int, o, f->off))
        put_int(d, f, o);
}
/* The open-file limit: 0 means the hard limit, which is not known until the master runs. */
static void put_nofile(dump_t *d, const field_t *f, const char *o)
{
    long long v = AT(long long, o, f->off);
    if (v)
        key_int(d, f->name, v);
    else {
        indent(d);
        fprintf(d->out, "# %s: the hard limit\n", f->name);
    }
}
static void put_double(dump_t *d, const field_t *f, const char *o) { key_double(d, f->name, AT(double, o, f->off)); }
/* A number whose 0 means off and cannot be written: shown as a comment. */
static void put_double_set(dump_t *d, const field_t *f, const char *o)
{
    if (AT(double, o, f->off) != 0)
        put_double(d, f, o);
    else {
        indent(d);
        fprintf(d->out, "# %s: off\n", f->name);
    }
}
static void put_bool(dump_t *d, const field_t *f, const char *o) { key_bool(d, f->name, AT(bool, o, f->off)); }
/* An int -1 (not set) / 0 / 1, printed as a bool when set. */
static void put_tristate(dump_t *d, const field_t *f, const char *o)
{
    int v = AT(int, o, f->off);
    if (v >= 0)
        key_bool(d, f->name, v);
}
static void put_strings(dump_t *d, const field_t *f, const char *o)
{
    int n = AT(int, o, f->count_off);
    if (n > 0)
        key_strings(d, f->name, AT(char **, o, f->off), n);
}

/* Secrets. */
static void put_secret(dump_t *d, const field_t *f, const char *o)
{
    const char *s = AT(char *, o, f->off);
    if (s)
        key_string(d, f->name, s[0] ? MASK : "");
}
/* A secret whose "" means off: printed even when not set. */
static void put_secret_or_empty(dump_t *d, const field_t *f, const char *o)
{
    const char *s = AT(char *, o, f->off);
    key_string(d, f->name, s && s[0] ? MASK : "");
}

bool cfg_dump_secret_name(const char *name, size_t len)
{
    static const char *const words[] = {"auth", "key", "token", "secret", "password", "passwd", "cookie",
                                        "signature", "sig", "credential", NULL};
    for (const char *const *w = words; *w; w++) {
        size_t wl = strlen(*w);
        for (size_t i = 0; i + wl <= len; i++)
            if (strncasecmp(name + i, *w, wl) == 0)
                return true;
    }
    return false;
}

/* Masks a URL's password (scheme://user:PASSWORD@host) and the values of query parameters
 * named like credentials (?api_key=VALUE). Returns a malloc'd string. */
char *cfg_dump_mask_url(const char *url)
{
    size_t masks = 1; /* the password, and at most one per query value */
    for (const char *e = strchr(url, '='); e; e = strchr(e + 1, '='))
        masks++;
    char *out = malloc(strlen(url) + masks * sizeof MASK + 1), *w = out;
    if (!out)
        return NULL;
    const char *p = url, *scheme = strstr(url, "://");
    const char *auth_start = scheme ? scheme + 3 : url;
    const char *auth_end = auth_start + strcspn(auth_start, "/?#");
    const char *at = memrchr(auth_start, '@', (size_t)(auth_end - auth_start));
    if (at) {
        const char *colon = memchr(auth_start, ':', (size_t)(at - auth_start));
        if (colon) {
            memcpy(w, p, (size_t)(colon + 1 - p));
            w += colon + 1 - p;
            w = stpcpy(w, MASK);
            p = at;
        }
    }
    const char *query = strchr(p, '?');
    if (!query)
        return strcpy(w, p), out;
    memcpy(w, p, (size_t)(query + 1 - p));
    w += query + 1 - p;
    for (p = query + 1; *p && *p != '#';) {
        size_t plen = strcspn(p, "&#");
        const char *eq = memchr(p, '=', plen);
        if (eq && cfg_dump_secret_name(p, (size_t)(eq - p))) {
            memcpy(w, p, (size_t)(eq + 1 - p));
            w += eq + 1 - p;
            w = stpcpy(w, MASK);
        } else {
            memcpy(w, p, plen);
            w += plen;
        }
        p += plen;
        if (*p == '&')
            *w++ = *p++;
    }
    strcpy(w, p);
    return out;
}

static void put_url(dump_t *d, const field_t *f, const char *o)
{
    const char *s = AT(char *, o, f->off);
    if (!s)
        return;
    char *masked = cfg_dump_mask_url(s);
    key_string(d, f->name, masked ? masked : MASK);
    free(masked);
}

static void put_url_or_empty(dump_t *d, const field_t *f, const char *o)
{
    if (AT(char *, o, f->off))
        put_url(d, f, o);
    else
        key_string(d, f->name, "");
}

/* Backend headers: "Name: value", the value masked when the name looks like a credential. */
static void put_headers(dump_t *d, const field_t *f, const char *o)
{
    int n = AT(int, o, f->count_off);
    char *const *h = AT(char **, o, f->off);
    if (n <= 0)
        return;
    indent(d);
    fprintf(d->out, "%s = [", f->name);
    for (int i = 0; i < n; i++) {
        size_t name_len = strcspn(h[i], ":");
        fputs(i ? ", \"" : " \"", d->out);
        if (cfg_dump_secret_name(h[i], name_len)) {
            put_escaped(d, h[i], name_len);
            fputs(": " MASK, d->out);
        } else {
            put_escaped(d, h[i], strlen(h[i]));
        }
        fputc('"', d->out);
    }
    fputs(" ];\n", d->out);
}

/* Aggregates. */
static void put_fields(dump_t *d, const field_t *fields, const char *o)
{
    for (const field_t *f = fields; f->name; f++)
        f->put(d, f, o);
}

static void put_group(dump_t *d, const field_t *f, const char *o)
{
    indent(d);
    fprintf(d->out, "%s = {\n", f->name);
    d->depth++;
    put_fields(d, f->sub, o + f->off);
    d->depth--;
    indent(d);
    fputs("};\n", d->out);
}

static void put_list(dump_t *d, const field_t *f, const char *o)
{
    int n = AT(int, o, f->count_off);
    const char *elems = AT(char *, o, f->off);
    if (n <= 0)
        return;
    indent(d);
    fprintf(d->out, "%s = (\n", f->name);
    d->depth++;
    for (int i = 0; i < n; i++) {
        indent(d);
        fputs("{\n", d->out);
        d->depth++;
        put_fields(d, f->sub, elems + (size_t)i * f->elem_size);
        d->depth--;
        indent(d);
        fputs(i + 1 < n ? "},\n" : "}\n", d->out);
    }
    d->depth--;
    indent(d);
    fputs(");\n", d->out);
}

/* Values stored in another form than written: an index into the schema's names (a NULL
 * name, such as no profile, prints nothing), or bits 1 << index. */
static void put_enum(dump_t *d, const field_t *f, const char *o)
{
    int v = AT(int, o, f->off);
    if (v >= 0 && v < f->nnames && f->names[v])
        key_string(d, f->name, f->names[v]);
}

static void put_flags(dump_t *d, const field_t *f, const char *o)
{
    unsigned bits = AT(unsigned, o, f->off);
    char *on[32];
    int n = 0;
    for (int i = 0; i < f->nnames; i++)
        if (bits & (1u << i))
            on[n++] = (char *)f->names[i];
    key_strings(d, f->name, on, n);
}

/* Keys that only mean something for a model served by Triton (one with a profile). */
static void put_triton_bool(dump_t *d, const field_t *f, const char *o)
{
    if (((const cfg_model_t *)(const void *)o)->profile != PROFILE_NONE)
        put_bool(d, f, o);
}

static void put_prompt_format(dump_t *d, const field_t *f, const char *o)
{
    const prompt_format_t *fmt = AT(const prompt_format_t *, o, f->off);
    if (fmt)
        key_string(d, f->name, fmt->name);
}

static void put_system_role(dump_t *d, const field_t *f, const char *o)
{
    key_string(d, f->name, cfg_system_names[AT(bool, o, f->off)]);
}

/* A backend index, as the backend's name. */
static void put_backend_ref(dump_t *d, const field_t *f, const char *o)
{
    key_string(d, f->name, d->cfg->backends[AT(int, o, f->off)].name);
}

/* One target: backend and backend_model directly in the model; several: a targets list. */
static const field_t target_fields[] = {
    F(cfg_target_t, "backend", put_backend_ref, backend),
    F(cfg_target_t, "backend_model", put_str, backend_model),
    F(cfg_target_t, "weight", put_int, weight),
    {0},
};

static void put_targets(dump_t *d, const field_t *f, const char *o)
{
    const cfg_model_t *m = (const cfg_model_t *)(const void *)o;
    if (m->ntargets == 1) { /* a model's own keys: no weight */
        put_backend_ref(d, &target_fields[0], (const char *)&m->targets[0]);
        put_str(d, &target_fields[1], (const char *)&m->targets[0]);
        return;
    }
    field_t list = {f->name, put_list, offsetof(cfg_model_t, targets), target_fields, offsetof(cfg_model_t, ntargets),
                    sizeof(cfg_target_t), NULL, NULL, 0};
    put_list(d, &list, o);
}

static void put_fallbacks(dump_t *d, const field_t *f, const char *o)
{
    const cfg_model_t *m = (const cfg_model_t *)(const void *)o;
    if (m->nfallbacks <= 0)
        return;
    char **names = calloc((size_t)m->nfallbacks, sizeof *names);
    if (!names)
        return;
    for (int i = 0; i < m->nfallbacks; i++)
        names[i] = d->cfg->models[m->fallbacks[i]].name;
    key_strings(d, f->name, names, m->nfallbacks);
    free(names);
}

/* "name=override" pairs back into a group { name = "override"; }. */
static void put_tensor_names(dump_t *d, const field_t *f, const char *o)
{
    const cfg_model_t *m = (const cfg_model_t *)(const void *)o;
    if (m->ntensor_names <= 0)
        return;
    indent(d);
    fprintf(d->out, "%s = {\n", f->name);
    d->depth++;
    for (int i = 0; i < m->ntensor_names; i++) {
        const char *pair = m->tensor_names[i], *eq = strchr(pair, '=');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - pair), pair);
        key_string(d, name, eq + 1);
    }
    d->depth--;
    indent(d);
    fputs("};\n", d->out);
}

static const field_t health_fields[] = {
    F(cfg_backend_t, "path", put_str, health_path),
    F(cfg_backend_t, "interval", put_double, health_interval),
    F(cfg_backend_t, "timeout", put_double, health_timeout),
    {0},
};

static void put_health_check(dump_t *d, const field_t *f, const char *o)
{
    if (AT(char *, o, offsetof(cfg_backend_t, health_path)))
        put_group(d, f, o);
}

static const field_t price_fields[] = {
    F(cfg_model_t, "input", put_double, price_input),
    F(cfg_model_t, "output", put_double, price_output),
    F(cfg_model_t, "cached_input", put_double, price_cached_input),
    {0},
};

static void put_price(dump_t *d, const field_t *f, const char *o)
{
    if (AT(bool, o, offsetof(cfg_model_t, priced)))
        put_group(d, f, o);
}

static void put_budget_period(dump_t *d, const field_t *f, const char *o)
{
    key_string(d, f->name, cfg_budget_period_name(AT(int, o, f->off)));
}

static const field_t budget_fields[] = {
    F(cfg_key_t, "usd", put_double, budget_usd),
    F(cfg_key_t, "period", put_budget_period, budget_period),
    {0},
};

static void put_budget(dump_t *d, const field_t *f, const char *o)
{
    if (AT(int, o, offsetof(cfg_key_t, budget_period)) != BUDGET_NONE)
        put_group(d, f, o);
}

/* API keys are masked one by one ("********-1", ...): the loader wants them distinct. */
static void put_api_key(dump_t *d, const field_t *f, const char *o)
{
    const cfg_key_t *k = (const cfg_key_t *)(const void *)o;
    char masked[32];
    snprintf(masked, sizeof masked, MASK "-%d", (int)(k - d->cfg->keys) + 1);
    key_string(d, f->name, masked);
}


static const field_t log_fields[] = {
    ENUM(cfg_t, "level", put_enum, log_level, cfg_log_level_names),
    F(cfg_t, "error_log", put_str, error_log),
    F(cfg_t, "access_log", put_str, access_log),
    {0},
};

static const field_t limit_fields[] = {
    F(cfg_t, "max_body_bytes", put_size, max_body_bytes),
    F(cfg_t, "max_event_bytes", put_size, max_event_bytes),
    F(cfg_t, "max_connections", put_int, max_connections),
    F(cfg_t, "idle_timeout", put_int, idle_timeout),
    F(cfg_t, "drain_timeout", put_int, drain_timeout),
    F(cfg_t, "header_timeout", put_double, header_timeout),
    F(cfg_t, "min_body_rate", put_long, min_body_rate),
    {0},
};

static const field_t metrics_fields[] = {
    F(cfg_t, "token", put_secret_or_empty, metrics_token),
    F(cfg_t, "listen", put_str, metrics_listen),
    {0},
};

static const field_t tracing_fields[] = {
    F(cfg_t, "otlp_endpoint", put_url_or_empty, otlp_endpoint),
    F(cfg_t, "service_name", put_str, service_name),
    F(cfg_t, "queue_size", put_int, trace_queue_size),
    F(cfg_t, "batch_size", put_int, trace_batch_size),
    F(cfg_t, "flush_interval_ms", put_int, trace_flush_interval_ms),
    {0},
};

static const field_t retry_fields[] = {
    F(cfg_retry_t, "attempts", put_int, attempts),
    ENUM(cfg_retry_t, "retry_on", put_flags, retry_on, cfg_retry_on_names),
    F(cfg_retry_t, "backoff_ms", put_int, backoff_ms),
    F(cfg_retry_t, "max_backoff_ms", put_int, max_backoff_ms),
    F(cfg_retry_t, "deadline", put_double, deadline),
    F(cfg_retry_t, "attempts_header", put_bool, attempts_header),
    {0},
};

static const field_t circuit_fields[] = {
    F(cfg_t, "failures", put_int, circuit_failures),
    F(cfg_t, "cooldown", put_double, circuit_cooldown),
    F(cfg_t, "failure_ratio", put_double_set, circuit_failure_ratio),
    F(cfg_t, "window", put_double, circuit_window),
    F(cfg_t, "min_requests", put_int, circuit_min_requests),
    {0},
};

static const field_t cluster_fields[] = {
    F(cfg_cluster_t, "redis", put_url_or_empty, redis),
    F(cfg_cluster_t, "key_prefix", put_str, key_prefix),
    ENUM(cfg_cluster_t, "on_error", put_enum, on_error, cfg_on_error_names),
    F(cfg_cluster_t, "timeout_ms", put_int, timeout_ms),
    F(cfg_cluster_t, "hosts", put_int, hosts),
    {0},
};

static const field_t backend_fields[] = {
    F(cfg_backend_t, "name", put_str, name),
    F(cfg_backend_t, "type", put_str, type),
    F(cfg_backend_t, "url", put_url, url),
    F(cfg_backend_t, "api_key", put_secret, api_key),
    STRS(cfg_backend_t, "headers", put_headers, headers, nheaders),
    F(cfg_backend_t, "pass_client_key", put_bool, pass_client_key),
    F(cfg_backend_t, "connect_timeout", put_double, connect_timeout),
    F(cfg_backend_t, "first_byte_timeout", put_double, first_byte_timeout),
    F(cfg_backend_t, "idle_timeout", put_double, idle_timeout),
    F(cfg_backend_t, "timeout", put_double, timeout),
    F(cfg_backend_t, "chunk_delay_ms", put_int, chunk_delay_ms),
    F(cfg_backend_t, "stream_usage", put_bool, stream_usage),
    {.name = "health_check", .put = put_health_check, .sub = health_fields},
    {0},
};

static const field_t model_fields[] = {
    F(cfg_model_t, "name", put_str, name),
    CUSTOM("targets", put_targets, "backend backend_model"),
    ENUM(cfg_model_t, "kinds", put_flags, kinds, cfg_kind_names),
    F(cfg_model_t, "default", put_bool, is_default),
    ENUM(cfg_model_t, "strategy", put_enum, strategy, cfg_strategy_names),
    CUSTOM("fallbacks", put_fallbacks, NULL),
    F(cfg_model_t, "backend_stream", put_tristate, backend_stream),
    F(cfg_model_t, "max_tokens", put_int_set, max_tokens),
    ENUM(cfg_model_t, "profile", put_enum, profile, cfg_profile_names),
    F(cfg_model_t, "prompt_format", put_prompt_format, prompt_format),
    F(cfg_model_t, "batch_dim", put_tristate, batch_dim),
    F(cfg_model_t, "cumulative_output", put_triton_bool, cumulative_output),
    F(cfg_model_t, "strip_prompt", put_triton_bool, strip_prompt),
    CUSTOM("tensor_names", put_tensor_names, NULL),
    {.name = "price", .put = put_price, .sub = price_fields},
    {0},
};

static const field_t key_fields[] = {
    CUSTOM("key", put_api_key, NULL),
    F(cfg_key_t, "name", put_str, name),
    STRS(cfg_key_t, "models", put_strings, models, nmodels),
    F(cfg_key_t, "rpm", put_long, rpm),
    F(cfg_key_t, "tpm", put_long, tpm),
    F(cfg_key_t, "max_concurrent", put_int, max_concurrent),
    {.name = "budget", .put = put_budget, .sub = budget_fields},
    {0},
};

static const field_t format_fields[] = {
    F(prompt_format_t, "name", put_str, name),
    F(prompt_format_t, "bos", put_str, bos),
    F(prompt_format_t, "system", put_system_role, system_in_user),
    F(prompt_format_t, "system_prefix", put_str, system_prefix),
    F(prompt_format_t, "system_suffix", put_str, system_suffix),
    F(prompt_format_t, "user_prefix", put_str, user_prefix),
    F(prompt_format_t, "user_suffix", put_str, user_suffix),
    F(prompt_format_t, "assistant_prefix", put_str, assistant_prefix),
    F(prompt_format_t, "assistant_suffix", put_str, assistant_suffix),
    F(prompt_format_t, "generation_prompt", put_str, generation_prompt),
    F(prompt_format_t, "eos", put_str, eos),
    {0},
};

static const field_t passthrough_fields[] = {
    F(cfg_passthrough_t, "prefix", put_str, prefix),
    F(cfg_passthrough_t, "backend", put_backend_ref, backend),
    {0},
};

static const field_t top_fields[] = {
    F(cfg_t, "listen", put_str, listen),
    F(cfg_t, "workers", put_int, workers),
    F(cfg_t, "rlimit_nofile", put_nofile, rlimit_nofile),
    F(cfg_t, "pidfile", put_str, pidfile),
    GROUP("log", 0, log_fields),
    GROUP("limits", 0, limit_fields),
    F(cfg_t, "grpc_listen", put_str_or_empty, grpc_listen),
    GROUP("metrics", 0, metrics_fields),
    GROUP("tracing", 0, tracing_fields),
    GROUP("retry", offsetof(cfg_t, retry), retry_fields),
    GROUP("circuit_breaker", 0, circuit_fields),
    F(cfg_t, "hide_unavailable_models", put_bool, hide_unavailable_models),
    GROUP("cluster", offsetof(cfg_t, cluster), cluster_fields),
    F(cfg_t, "state_file", put_str_or_empty, state_file),
    LIST(cfg_t, "backends", backends, nbackends, backend_fields, cfg_backend_t),
    LIST(cfg_t, "prompt_formats", formats, nformats, format_fields, prompt_format_t),
    LIST(cfg_t, "models", models, nmodels, model_fields, cfg_model_t),
    LIST(cfg_t, "api_keys", keys, nkeys, key_fields, cfg_key_t),
    LIST(cfg_t, "passthrough", passthrough, npassthrough, passthrough_fields, cfg_passthrough_t),
    {0},
};

void cfg_dump(const cfg_t *cfg, FILE *out)
{
    dump_t d = {out, cfg, 0};
    fprintf(out, "# airouter configuration %s: effective values, defaults included, secrets masked\n", cfg->path);
    put_fields(&d, top_fields, (const char *)cfg);
}

/* Finds the table for a group path ("", "limits", "backends.health_check", ...). */
static const field_t *group_fields(const char *path)
{
    const field_t *fields = top_fields;
    while (*path) {
        size_t len = strcspn(path, ".");
        const field_t *f = fields;
        while (f->name && !(strlen(f->name) == len && strncmp(f->name, path, len) == 0))
            f++;
        if (!f->name)
            return NULL;
        fields = f->put == put_targets ? target_fields : f->sub;
        if (!fields)
            return NULL;
        path += len + (path[len] == '.');
    }
    return fields;
}

bool cfg_dump_covers(const char *group, const char *key)
{
    const field_t *fields = group_fields(group);
    for (const field_t *f = fields; f && f->name; f++) {
        if (strcmp(f->name, key) == 0)
            return true;
        for (const char *a = f->also; a && *a; a += strspn(a, " ")) {
            size_t len = strcspn(a, " ");
            if (strlen(key) == len && strncmp(a, key, len) == 0)
                return true;
            a += len;
        }
    }
    return false;
}
