/* Prometheus metrics shared by every process. The master maps one anonymous shared
 * region before forking, so counters add up across workers and survive worker
 * restarts and reloads. Updating a metric is a few relaxed atomic adds: no lock is
 * shared between processes. Labels come only from the config (model and backend
 * names) and fixed enums, never from client input, so cardinality is bounded. */
#ifndef AIROUTER_METRICS_H
#define AIROUTER_METRICS_H
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"

#define MET_MODELS 256        /* slot 0 is "other" */
#define MET_BACKENDS 64       /* slot 0 is "none" */
#define MET_WORKERS 1024      /* per-worker in-flight gauges */

enum met_class { MET_2XX, MET_4XX, MET_5XX, MET_NCLASSES };
enum met_reason { MET_ERR_CONNECT, MET_ERR_TIMEOUT, MET_ERR_5XX, MET_ERR_4XX, MET_ERR_PROTOCOL, MET_NREASONS };
enum met_hist_kind { MET_H_DURATION, MET_H_TTFT, MET_H_GAP, MET_NHISTS };

/* Creates the shared region (master, before the first fork). */
int met_init(void);
/* Gives the config's models and backends their slots, keeping the slot of every name
 * seen before (master, before forking workers on cfg). */
void met_assign_slots(cfg_t *cfg);

/* The calling worker's in-flight gauge slot (set in the child after fork). */
void met_set_worker_slot(int slot);
/* Master: a worker slot is free again (its process is gone). */
void met_clear_worker(int slot);

void met_in_flight(int delta);
void met_request(int model, int backend, unsigned kind, int status);
void met_observe(enum met_hist_kind h, int model, uint64_t micros);
void met_tokens(int model, uint64_t prompt, uint64_t completion);
void met_backend_error(int backend, enum met_reason reason);
void met_client_abort(int model);
void met_spans(uint64_t exported, uint64_t dropped);
/* Shared limits in Redis: a failed call (counted), and whether Redis answers (gauge:
 * 1 reachable, 0 not; not shown until a worker with a cluster group reports). */
void met_cluster_error(void);
void met_cluster_up(bool up);

/* Master-side process gauges and counters. */
void met_set_workers(int alive);
void met_worker_restarted(void);
void met_reload(bool ok);
void met_set_generation(unsigned gen);

/* Appends the Prometheus text exposition of everything. */
int met_render(buf_t *out, const char *version);
/* For other modules' metrics: key="value" with the value escaped, and a HELP/TYPE header. */
void met_label(buf_t *out, const char *key, const char *value);
void met_help(buf_t *out, const char *name, const char *type, const char *text);

#endif
