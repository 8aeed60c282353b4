/* Resilience state shared by every process (one anonymous shared mapping made by the
 * master before forking): target circuits, Retry-After blocks, in-flight counts,
 * round-robin positions, backend health, and per-key rate and concurrency limits.
 * Every update is a lock-free atomic operation; counts a dead worker held are given
 * back by the master when it reaps that worker. */
#ifndef AIROUTER_STATE_H
#define AIROUTER_STATE_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/config.h"

#define ST_TARGETS 512
#define ST_KEYS 256
#define ST_BACKENDS 64

int st_init(void);
/* Master: gives targets and keys their slots, keeping those of names seen before. */
void st_assign_slots(cfg_t *cfg);
/* Master: a worker is gone; give back what it held. */
void st_clear_worker(int worker_slot);
void st_set_worker_slot(int worker_slot);

/* Circuit breaker. st_target_usable says whether a target may get a request now;
 * when its circuit is half-open it lets exactly one caller through (*probe set). */
bool st_target_usable(int slot, uint64_t now, bool take_probe, bool *probe);
/* When a target's circuit opens: `failures` consecutive failed tries, or (failure_ratio > 0)
 * failed/tries >= failure_ratio over the last window_ms with at least min_requests tries. */
typedef struct {
    int failures;
    double cooldown_s;
    double failure_ratio;
    uint64_t window_ms;
    int min_requests;
} st_circuit_t;
#define ST_WINDOW_BUCKETS 10
typedef enum { ST_STAYS_CLOSED, ST_OPEN_CONSECUTIVE, ST_OPEN_RATIO, ST_OPEN_PROBE_FAILED } st_open_reason_t;

/* An answer from the target; closes a half-open circuit. */
void st_target_success(int slot, const st_circuit_t *cb, uint64_t now);
/* Counts a failed try; says whether, and why, it opened the circuit. */
st_open_reason_t st_target_failure(int slot, const st_circuit_t *cb, uint64_t now);
/* Keeps a target out until the given time (a 429's Retry-After). */
void st_target_block(int slot, uint64_t until);
/* When an open circuit or block lets the target back in (0 if usable). */
uint64_t st_target_free_at(int slot);

void st_target_in_flight(int slot, int delta);
int64_t st_target_load(int slot);
uint64_t st_round_robin(int model_slot);

/* Active health checks: unhealthy backends get no requests. */
void st_backend_health(int backend_slot, bool healthy);
bool st_backend_healthy(int backend_slot);
/* Only the lease holder runs health checks; a holder that stops renewing is replaced. */
bool st_health_lease(pid_t self, uint64_t now, uint64_t ttl_ms);

/* Per-key limits. st_key_admit checks requests per minute, tokens per minute and
 * concurrency in that order and takes a request and a concurrency slot if admitted.
 * On refusal it returns which limit ('r', 't', 'c') and *retry_after_s. */
typedef struct {
    long limit_requests, remaining_requests;
    long limit_tokens, remaining_tokens;
    int reset_requests_s, reset_tokens_s;
} st_key_usage_t;
char st_key_admit(const cfg_key_t *key, uint64_t now, int *retry_after_s, st_key_usage_t *usage);
void st_key_release(const cfg_key_t *key);
void st_key_tokens(const cfg_key_t *key, uint64_t tokens, uint64_t now);
/* Token reservation: if the key's tokens-per-minute window is not full, adds estimate to it
 * at once and returns 0 with *window set (the minute it was counted in); else returns 't'
 * with *retry_after_s. Keys without tpm always pass and reserve nothing (*window = 0). */
char st_key_reserve(const cfg_key_t *key, long long estimate, uint64_t now, uint64_t *window, int *retry_after_s);
/* Replaces a reservation by what was finally used (quota_settled): the difference is
 * applied to the window it was counted in, if that window is still the current one. */
void st_key_settle(const cfg_key_t *key, uint64_t window, long long reserved, long long used, uint64_t now);
/* The tokens counted in the key's current window (for tests and metrics). */
uint64_t st_key_tokens_used(const cfg_key_t *key, uint64_t now);

/* Budgets, in micro-dollars, per budget period (quota_period_id). st_budget_reserve adds
 * estimate if the key has spent less than limit in this period and returns 0, else 'b'. */
char st_budget_reserve(const cfg_key_t *key, unsigned long long period, long long limit, long long estimate);
/* Replaces a reservation by the final cost, if the period is still the same. */
void st_budget_settle(const cfg_key_t *key, unsigned long long period, long long reserved, long long final);
long long st_budget_spent(const cfg_key_t *key, unsigned long long period);
/* Counts what a key spent on a model (airouter_spend_usd_total). */
void st_spend_count(const cfg_key_t *key, int model_slot, long long micro);
/* Master: writes every budgeted key's spend in its current period to path (atomically), or
 * reads it back at start. Return 0, or -1 with the reason logged. */
int st_budget_save(const char *path, const cfg_t *cfg);
int st_budget_load(const char *path, const cfg_t *cfg);

/* Appends the state's metrics (Prometheus text): each target's circuit and requests in
 * flight, each of cfg's backends' health. */
void st_render(buf_t *out, const cfg_t *cfg);

#endif
