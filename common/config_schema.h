/* The configuration schema as data: each libconfig group is one table of fields (name, type,
 * offset into its C struct, range, default, enum names, flags). The loader (common/config.c)
 * walks these tables once: unknown keys, wrong types, out-of-range values and defaults all come
 * from here; only checks that span several fields are written by hand, as group and field hooks. */
#ifndef AIROUTER_CONFIG_SCHEMA_H
#define AIROUTER_CONFIG_SCHEMA_H
#include <stdbool.h>
#include <libconfig.h>
#include <stddef.h>

#include "common/config.h"

typedef enum {
    CFG_STRING,   /* char *, ${VAR}-expanded; .sdef copied in when absent */
    CFG_STRINGS,  /* char ** (NULL-terminated) and an int count at .count_off */
    CFG_INT,      /* an integer of .size bytes (int, long, long long, size_t) in [.min, .max] */
    CFG_SECONDS,  /* double in (0, .dmax] */
    CFG_FRACTION, /* double in (0, .dmax] */
    CFG_AMOUNT,   /* double in [0, .dmax] */
    CFG_BOOL,     /* bool */
    CFG_TRISTATE, /* int: -1 when absent, else 0 or 1 written as a bool */
    CFG_ENUM,     /* a string naming one of .names, stored as its index (.size bytes) */
    CFG_FLAGS,    /* a list of strings naming .names, stored as unsigned bits 1 << index */
    CFG_GROUP,    /* a nested group { ... } described by .group, at obj + .off */
    CFG_LIST,     /* a list of groups ( { ... }, ... ): array at .off, int count at .count_off */
    CFG_CUSTOM,   /* a known key read by its group's hook (references resolved by name, ...) */
} cfg_type_t;

enum {
    CFG_EMPTY_UNSET = 1 << 0, /* a string "" (say "${VAR:-}") means not set: NULL */
    CFG_PRESENCE = 1 << 1,    /* a group whose defaults apply only when it is written */
    CFG_OWNED = 1 << 2,       /* a group named after its owner: "backend 'x' health_check" */
    CFG_OWNER_MSG = 1 << 3,   /* .msg starts with the owner: "model 'x': strategy must be ..." */
    CFG_REQUIRED = 1 << 4,    /* a list that must be there: "no 'backends' defined" */
    CFG_LISTS_ONLY = 1 << 5,  /* a list of groups that cannot be written as an array [ ... ] */
    CFG_BY_HOOK = 1 << 6,     /* read by the group's hook, not the walker (freed like its type) */
};

typedef struct cfg_loader cfg_loader_t;
typedef struct cfg_field cfg_field_t;
typedef struct cfg_group cfg_group_t;

/* A group's cross-field checks, run once its fields are read. g is the group's setting, obj
 * the struct its offsets start from, where its name in messages ("backends[0]", "log") and
 * owner what it calls itself in them ("backend 'x'"; where when it has no label). Returns 0 or
 * -1 with the error written. */
typedef int (*cfg_group_hook_t)(cfg_loader_t *ld, const config_setting_t *g, char *obj, const char *where,
                                const char *owner);
/* A field's own check, run right after it is read (or defaulted): s is its setting or NULL. */
typedef int (*cfg_field_hook_t)(cfg_loader_t *ld, const config_setting_t *s, char *obj, const cfg_field_t *f);

struct cfg_group {
    const char *shape;        /* "{ ... }" in "'log' must be a group { ... }" */
    const cfg_field_t *fields; /* ended by a field without a name */
    size_t size;              /* one element of a list */
    const char *label;        /* "backend": an element calls itself "backend 'NAME'" */
    cfg_group_hook_t check;
};

struct cfg_field {
    const char *name;
    cfg_type_t type;
    unsigned flags;           /* CFG_EMPTY_UNSET, ... */
    size_t off, size, count_off;
    long long min, max, idef; /* integers, enums, flags, bools: range and default */
    double dmax, ddef;        /* numbers */
    const char *sdef;         /* strings */
    const char *const *names; /* enums and flags; a NULL entry is a value no name gives */
    int nnames;
    const char *msg;          /* enum: a bad name; flags: "unknown kind"; list: not a list */
    const char *empty;        /* list: the message when it is empty (NULL: allowed) */
    const cfg_group_t *group; /* groups and lists; custom fields: the keys they accept */
    cfg_field_hook_t check;
};

/* The whole configuration, from the top level down (common/config_schema.c). */
extern const cfg_group_t cfg_schema_top;

/* The walker (common/config.c), for the hooks. The loader's state: the file name, the error
 * buffer and the configuration being filled. */
struct cfg_loader {
    const char *path;
    char *err;
    size_t errlen;
    cfg_t *cfg;
};
/* Writes "FILE:LINE: message" (the line of s; "FILE: message" without s). Returns -1. */
__attribute__((format(printf, 3, 4))) int cfg_fail(cfg_loader_t *ld, const config_setting_t *s, const char *fmt,
                                                   ...);
/* Reads string setting s, ${VAR}-expanded, into *out (freeing what was there). */
int cfg_read_string(cfg_loader_t *ld, const config_setting_t *s, const char *key, char **out);
/* Reads a list of strings, each expanded: *out (NULL-terminated) and *count. */
int cfg_read_strings(cfg_loader_t *ld, const config_setting_t *s, const char *key, char ***out, int *count);
/* Refuses any key of g that fields does not name: "unknown key 'k' in WHERE". */
int cfg_check_keys(cfg_loader_t *ld, const config_setting_t *g, const char *where, const cfg_field_t *fields);
/* Applies defaults and reads grp's fields from g (NULL: defaults only), then its hook;
 * unknown keys are refused. owner is what the enclosing group calls itself. */
int cfg_walk_group(cfg_loader_t *ld, const config_setting_t *g, const cfg_group_t *grp, char *obj,
                   const char *where, const char *owner);
/* The same without the unknown-key check or the hook: fields shared with another group. */
int cfg_walk_fields(cfg_loader_t *ld, const config_setting_t *g, const cfg_group_t *grp, char *obj,
                    const char *where);
/* Reads list field f of parent (a list of groups) into obj: allocation, count, each element. */
int cfg_walk_list(cfg_loader_t *ld, const config_setting_t *parent, const cfg_field_t *f, char *obj,
                  const char *owner);
/* Frees what grp's fields own in obj (strings, string lists, nested groups and lists). */
void cfg_free_group(const cfg_group_t *grp, char *obj);

/* Names stored values are printed with (the loader and -T share them). */
extern const char *const cfg_kind_names[KIND_COUNT];
extern const char *const cfg_log_level_names[4];
extern const char *const cfg_retry_on_names[4];
extern const char *const cfg_strategy_names[3];
extern const char *const cfg_profile_names[3];
extern const char *const cfg_on_error_names[3];
extern const char *const cfg_system_names[2];

#endif
