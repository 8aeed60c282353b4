#include "worker/http/ops.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/state.h"
#include "worker/core/balance.h"
#include "worker/core/route.h"

enum MHD_Result ops_health(request_t *req)
{
    static const char body[] = "{\"status\":\"ok\"}";
    return http_respond(req, 200, "application/json", body, sizeof body - 1);
}

enum MHD_Result ops_ready(request_t *req)
{
    if (http_draining)
        return http_respond_error(req, 503, "airouter is shutting down", "server_error", NULL,
                                  "service_unavailable");
    bool any = false;
    uint64_t now = clock_now_ms();
    for (int i = 0; i < http_cfg->nmodels && !any; i++)
        any = balance_model_available(http_cfg, &http_cfg->models[i], now);
    if (!any)
        return http_respond_error(req, 503, "No backend target is healthy.", "server_error", NULL,
                                  "no_healthy_target");
    static const char body[] = "{\"status\":\"ready\"}";
    return http_respond(req, 200, "application/json", body, sizeof body - 1);
}

/* Whether the client is on this host (127.0.0.0/8, ::1 or IPv4-mapped loopback). */
static bool peer_is_loopback(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

enum MHD_Result ops_metrics(request_t *req)
{
    struct MHD_Connection *conn = http_of(req)->conn;
    /* The metrics name every backend and model: with neither a token nor a listener of their
     * own chosen by the operator, only this host may read them. */
    if (!http_cfg->metrics_token && !http_has_metrics_listener() && !peer_is_loopback(conn))
        return http_respond_error(req, 403,
                                  "/metrics is served only to clients on this host; set metrics.token or "
                                  "metrics.listen to scrape it from elsewhere.",
                                  "invalid_request_error", NULL, "forbidden");
    if (http_cfg->metrics_token) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        bool ok = auth && strncasecmp(auth, "Bearer ", 7) == 0 && route_secret_equal(auth + 7, http_cfg->metrics_token);
        if (!ok)
            return http_respond_error(req, 401, "/metrics needs 'Authorization: Bearer TOKEN' (metrics.token).",
                                      "invalid_request_error", NULL, "invalid_api_key");
    }
    buf_t b = {0};
    if (met_render(&b, AIROUTER_VERSION) < 0) {
        buf_free(&b);
        return http_respond_error(req, 500, "metrics are not available", "server_error", NULL, NULL);
    }
    st_render(&b, http_cfg);
    enum MHD_Result rc = http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    buf_free(&b);
    return rc;
}
