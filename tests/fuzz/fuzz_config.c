/* The config loader (common/config.c): a config file's text through libconfig, ${VAR}
 * expansion and every validation, as `airouter -t` runs it. A config it accepts is freed;
 * one it refuses says why. */
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"
#include "worker/backend/backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        /* what the seed configs refer to, so they load all the way through */
        static const char *const vars[] = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "KEY_APP", "KEY_CI",
                                           "KEY_TEAM_A", "METRICS_TOKEN", "UNIT_KEY", NULL};
        for (int i = 0; vars[i]; i++)
            setenv(vars[i], "sk-fuzz-0123456789", 1);
        be_describe_types();
        fd = memfd_create("airouter-fuzz.conf", 0);
        FUZZ_ASSERT(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    FUZZ_ASSERT(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size);
    char err[512] = "";
    cfg_t *cfg = cfg_load(path, err, sizeof err);
    if (cfg)
        cfg_free(cfg);
    else
        FUZZ_ASSERT(err[0] != '\0');
    return 0;
}
