/* airouter -T: a loaded configuration printed back as a configuration file. */
#ifndef AIROUTER_CONFIG_DUMP_H
#define AIROUTER_CONFIG_DUMP_H
#include <stdbool.h>
#include <stdio.h>

#include "common/config.h"

/* Writes cfg to out in libconfig syntax: every effective value, defaults included; api_key,
 * api_keys' keys, metrics.token, credential-like headers, URL passwords and credential-like
 * URL query values masked. `airouter -t` accepts the output, and dumping it again gives the
 * same text. */
void cfg_dump(const cfg_t *cfg, FILE *out);

/* url with its password and credential-like query values replaced by a mask (malloc'd). */
char *cfg_dump_mask_url(const char *url);

/* Whether a header or query parameter name suggests a credential (auth, key, token...): the
 * dump masks such values, and backend errors relayed to clients are scrubbed of them. */
bool cfg_dump_secret_name(const char *name, size_t len);

/* Whether the dump prints key of group ("" top level, "limits", "backends.health_check",
 * "models.targets"...): the unit test holds it to every key the loader accepts. */
bool cfg_dump_covers(const char *group, const char *key);

#endif
