/* cfg_dump (common/config_dump.c): what the dump covers and how it masks URLs. The round trip
 * through the real binary (-T output fed back to -t) is in tests/e2e/install.test.js. */
#include "common/config_dump.h"
#include "common/config_schema.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every key of grp (at path) and of its nested groups must be printed by the dump. */
static int check_covers(const cfg_group_t *grp, const char *path)
{
    int groups = 1;
    for (const cfg_field_t *f = grp->fields; f->name; f++) {
        CHECK_MSG(cfg_dump_covers(path, f->name), "-T does not print '%s' of group '%s' (add it to common/config_dump.c)",
                  f->name, path);
        if ((f->type == CFG_GROUP || f->type == CFG_LIST) && f->group) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", f->name);
            groups += check_covers(f->group, sub);
        }
    }
    return groups;
}

/* A key the loader accepts but the dump does not print would vanish from `airouter -T`:
 * a new key needs its line in the dump's table. */
TEST(config_dump_covers_every_key)
{
    CHECK(check_covers(&cfg_schema_top, "") >= 10);
    CHECK(!cfg_dump_covers("limits", "no_such_key"));
    CHECK(!cfg_dump_covers("no_such_group", "name"));
}

static void check_mask(const char *url, const char *want)
{
    char *got = cfg_dump_mask_url(url);
    CHECK_STR(got, want);
    free(got);
}

TEST(config_dump_mask_url)
{
    check_mask("https://api.example.com/v1", "https://api.example.com/v1");
    check_mask("https://user:pa55@api.example.com/v1", "https://user:********@api.example.com/v1");
    check_mask("http://user@host:8080/v1", "http://user@host:8080/v1");
    check_mask("https://u:p@ss@host/v1?x=1", "https://u:********@host/v1?x=1");
    check_mask("https://host/v1?api_key=abc&region=eu&token=t#frag", "https://host/v1?api_key=********&region=eu&token=********#frag");
    check_mask("https://host/v1?sig=zz", "https://host/v1?sig=********");
    check_mask("https://host/a@b/v1", "https://host/a@b/v1");
    check_mask("", "");
    /* many short credential values: the masked URL is much longer than the original */
    char url[2048] = "https://h/v1?", want[8192] = "https://h/v1?";
    for (int i = 0; i < 200; i++) {
        strcat(url, i ? "&sig=" : "sig=");
        strcat(want, i ? "&sig=********" : "sig=********");
    }
    check_mask(url, want);
}
