/* airouter -V: its own version and, for each library, the version it was built against and
 * the one it runs with (they differ when a shared library is upgraded under the binary). */
#include "master/version.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <grpc/grpc.h>
#include <json-c/json_c_version.h>
#include <libconfig.h>
#include <limits.h>
#include <microhttpd.h>
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>
#ifdef AIROUTER_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

#ifndef AIROUTER_GRPC_BUILD_VERSION
#define AIROUTER_GRPC_BUILD_VERSION "unknown"
#endif

/* The file a shared library was loaded from, for libraries that report no run-time version. */
static const char *loaded_file(void *symbol, char *out, size_t size)
{
    Dl_info info;
    char real[PATH_MAX];
    if (!dladdr(symbol, &info) || !info.dli_fname || !realpath(info.dli_fname, real))
        return "unknown";
    const char *slash = strrchr(real, '/');
    snprintf(out, size, "%s", slash ? slash + 1 : real);
    return out;
}

static void line(FILE *out, const char *lib, const char *built, const char *runs)
{
    fprintf(out, "  %-14s built with %-12s runs with %s\n", lib, built, runs);
}

void version_print(FILE *out, const char *version)
{
    char mhd_built[32], text[PATH_MAX + 64], file[PATH_MAX];
    fprintf(out, "airouter %s\n", version);
    snprintf(mhd_built, sizeof mhd_built, "%x.%x.%x", (MHD_VERSION >> 24) & 0xff, (MHD_VERSION >> 16) & 0xff,
             (MHD_VERSION >> 8) & 0xff);
    line(out, "libmicrohttpd", mhd_built, MHD_get_version());
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    snprintf(text, sizeof text, "%s (TLS: %s)", curl->version, curl->ssl_version ? curl->ssl_version : "none");
    line(out, "libcurl", LIBCURL_VERSION, text);
    line(out, "json-c", JSON_C_VERSION, json_c_version());
    snprintf(text, sizeof text, "%s (core)", grpc_version_string());
    line(out, "grpc", AIROUTER_GRPC_BUILD_VERSION, text);
    line(out, "protobuf-c", PROTOBUF_C_VERSION, protobuf_c_version());
    snprintf(text, sizeof text, "(reports none; loaded %s)", loaded_file((void *)config_init, file, sizeof file));
    line(out, "libconfig", STR(LIBCONFIG_VER_MAJOR) "." STR(LIBCONFIG_VER_MINOR) "." STR(LIBCONFIG_VER_REVISION),
         text);
#ifdef AIROUTER_JEMALLOC
    const char *je = NULL;
    size_t len = sizeof je;
    if (mallctl("version", (void *)&je, &len, NULL, 0) != 0 || !je)
        je = "unknown";
    snprintf(text, sizeof text, "%.*s", (int)strcspn(je, "-"), je); /* without the git suffix */
    line(out, "jemalloc",
         STR(JEMALLOC_VERSION_MAJOR) "." STR(JEMALLOC_VERSION_MINOR) "." STR(JEMALLOC_VERSION_BUGFIX), text);
#else
    fprintf(out, "  %-14s not linked (this build uses the system allocator)\n", "jemalloc");
#endif
}
