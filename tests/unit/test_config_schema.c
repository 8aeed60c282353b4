/* The schema tables themselves (common/config_schema.c): a table entry the walker would
 * misread (an integer of a width it does not store, a default no name gives, a key listed
 * twice) compiles fine and fails only on some configuration, so every entry is checked here. */
#include "common/config_schema.h"
#include "unit.h"

#include <stdio.h>
#include <string.h>

/* One field of group path; returns how many fields it and its nested groups hold. */
static int check_field(const cfg_field_t *f, const char *path)
{
    switch (f->type) {
    case CFG_INT:
        /* store_int writes 8 or 4 bytes; any other width would be written as a bool */
        CHECK_MSG(f->size == sizeof(long long) || f->size == sizeof(int), "%s.%s: integer of %zu bytes", path,
                  f->name, f->size);
        CHECK_MSG(f->min <= f->max, "%s.%s: range %lld..%lld", path, f->name, f->min, f->max);
        break;
    case CFG_BOOL:
        CHECK_MSG(f->size == sizeof(bool), "%s.%s: bool of %zu bytes", path, f->name, f->size);
        CHECK_MSG(f->idef == 0 || f->idef == 1, "%s.%s: default %lld", path, f->name, f->idef);
        break;
    case CFG_TRISTATE:
        CHECK_MSG(f->size == sizeof(int) && f->idef == -1, "%s.%s: a tristate is an int defaulting to -1", path,
                  f->name);
        break;
    case CFG_SECONDS:
    case CFG_FRACTION:
    case CFG_AMOUNT: CHECK_MSG(f->dmax > 0, "%s.%s: no maximum", path, f->name); break;
    case CFG_ENUM:
        /* an int, or a bool for two names (the walker stores index != 0) */
        CHECK_MSG(f->size == sizeof(int) || (f->size == sizeof(bool) && f->nnames == 2), "%s.%s: enum of %zu bytes",
                  path, f->name, f->size);
        CHECK_MSG(f->names && f->nnames > 0 && f->msg, "%s.%s: enum without names or message", path, f->name);
        /* the default is a stored value: a named one, or the unnamed "not set" at index 0 */
        CHECK_MSG(f->idef >= 0 && f->idef < f->nnames && (f->names[f->idef] || f->idef == 0),
                  "%s.%s: default %lld is not one of its names", path, f->name, f->idef);
        break;
    case CFG_FLAGS:
        CHECK_MSG(f->size == sizeof(unsigned), "%s.%s: bit set of %zu bytes", path, f->name, f->size);
        CHECK_MSG(f->names && f->nnames > 0 && f->nnames <= 32 && f->msg, "%s.%s: bit set without names", path,
                  f->name);
        for (int i = 0; f->names && i < f->nnames; i++)
            CHECK_MSG(f->names[i] != NULL, "%s.%s: bit %d has no name", path, f->name, i);
        CHECK_MSG(f->nnames >= 32 || (unsigned long long)f->idef < 1ULL << f->nnames,
                  "%s.%s: default has bits no name gives", path, f->name);
        break;
    case CFG_LIST:
        CHECK_MSG(f->group && f->group->size > 0 && f->msg, "%s.%s: list without element group, size or message",
                  path, f->name);
        break;
    case CFG_GROUP: CHECK_MSG(f->group != NULL, "%s.%s: group without fields", path, f->name); break;
    default: break;
    }
    return 1;
}

static int check_group(const cfg_group_t *grp, const char *path)
{
    int n = 0;
    CHECK_MSG(grp->shape && grp->fields, "%s: group without shape or fields", path);
    for (const cfg_field_t *f = grp->fields; f->name; f++) {
        for (const cfg_field_t *o = grp->fields; o < f; o++)
            CHECK_MSG(strcmp(o->name, f->name) != 0, "%s: '%s' listed twice", path, f->name);
        n += check_field(f, path);
        if ((f->type == CFG_GROUP || f->type == CFG_LIST) && f->group) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.%s", path, f->name);
            n += check_group(f->group, sub);
        }
    }
    return n;
}

TEST(config_schema_tables_are_coherent)
{
    /* the whole schema is reachable from the top: well over a hundred keys */
    CHECK(check_group(&cfg_schema_top, "top") > 100);
}
