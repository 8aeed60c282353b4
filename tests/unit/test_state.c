/* common/state.c: the shared circuit state of targets */
#include "common/state.h"
#include "unit.h"

static bool usable(int slot, uint64_t now)
{
    bool probe;
    return st_target_usable(slot, now, false, &probe);
}

static bool take_probe(int slot, uint64_t now)
{
    bool probe = false;
    return st_target_usable(slot, now, true, &probe) && probe;
}

static bool mapped(void)
{
    static int done;
    if (!done)
        done = st_init() == 0 ? 1 : -1;
    return CHECK_MSG(done == 1, "st_init");
}

TEST(state_circuit_consecutive_failures)
{
    if (!mapped())
        return;
    const st_circuit_t cb = {.failures = 3, .cooldown_s = 2, .failure_ratio = 0, .window_ms = 60000, .min_requests = 1};
    int s = 1;
    uint64_t t = 1000000;
    CHECK_INT(st_target_failure(s, &cb, t), ST_STAYS_CLOSED);
    CHECK_INT(st_target_failure(s, &cb, t), ST_STAYS_CLOSED);
    st_target_success(s, &cb, t); /* an answer sets the count back */
    CHECK_INT(st_target_failure(s, &cb, t), ST_STAYS_CLOSED);
    CHECK_INT(st_target_failure(s, &cb, t), ST_STAYS_CLOSED);
    CHECK(usable(s, t));
    CHECK_INT(st_target_failure(s, &cb, t), ST_OPEN_CONSECUTIVE);
    CHECK(!usable(s, t));
    CHECK(!usable(s, t + 1999));
    CHECK_INT((long long)st_target_free_at(s), (long long)(t + 2000));
    /* half-open: exactly one probe */
    CHECK(take_probe(s, t + 2000));
    CHECK(!take_probe(s, t + 2001));
    CHECK(!usable(s, t + 2001));
    /* a failed probe opens it again at once */
    CHECK_INT(st_target_failure(s, &cb, t + 2100), ST_OPEN_PROBE_FAILED);
    CHECK(!usable(s, t + 4099));
    CHECK(take_probe(s, t + 4100));
    st_target_success(s, &cb, t + 4150); /* the probe answered: closed */
    CHECK(usable(s, t + 4151));
    CHECK_INT((long long)st_target_free_at(s), 0);
}

TEST(state_circuit_failure_ratio)
{
    if (!mapped())
        return;
    /* every other try fails: never 100 in a row, but half of them */
    const st_circuit_t cb = {.failures = 100, .cooldown_s = 5, .failure_ratio = 0.5, .window_ms = 10000, .min_requests = 6};
    int s = 2;
    uint64_t t = 5000000;
    st_open_reason_t why = ST_STAYS_CLOSED;
    int tries = 0;
    while (why == ST_STAYS_CLOSED && tries < 50) {
        st_target_success(s, &cb, t + (uint64_t)tries * 10);
        tries++;
        why = st_target_failure(s, &cb, t + (uint64_t)tries * 10);
        tries++;
    }
    CHECK_INT(why, ST_OPEN_RATIO);
    CHECK_INT(tries, 6); /* opened on the first failure that made min_requests */
    CHECK(!usable(s, t + 100));
    /* opening cleared the window: after the probe closes it, one failure does not reopen it */
    CHECK(take_probe(s, t + 60 + 5000));
    st_target_success(s, &cb, t + 5100);
    CHECK(usable(s, t + 5101));
    CHECK_INT(st_target_failure(s, &cb, t + 5200), ST_STAYS_CLOSED);
    CHECK(usable(s, t + 5201));
}

TEST(state_circuit_ratio_needs_min_requests_and_forgets_old_tries)
{
    if (!mapped())
        return;
    const st_circuit_t cb = {.failures = 100, .cooldown_s = 5, .failure_ratio = 0.5, .window_ms = 10000, .min_requests = 4};
    int s = 3;
    uint64_t t = 9000000;
    /* three failures: all failed, but fewer than min_requests tries */
    CHECK_INT(st_target_failure(s, &cb, t), ST_STAYS_CLOSED);
    CHECK_INT(st_target_failure(s, &cb, t + 1), ST_STAYS_CLOSED);
    CHECK_INT(st_target_failure(s, &cb, t + 2), ST_STAYS_CLOSED);
    /* 20 s later those are out of the 10 s window: 1 failure in 1 try */
    uint64_t later = t + 20000;
    CHECK_INT(st_target_failure(s, &cb, later), ST_STAYS_CLOSED);
    st_target_success(s, &cb, later);
    st_target_success(s, &cb, later);
    st_target_success(s, &cb, later);
    /* 1 failed of 4: under the ratio */
    CHECK(usable(s, later));
    /* 2 of 5 still under; 3 of 6 reaches one half */
    CHECK_INT(st_target_failure(s, &cb, later + 1), ST_STAYS_CLOSED);
    CHECK_INT(st_target_failure(s, &cb, later + 2), ST_OPEN_RATIO);
}

TEST(state_circuit_ratio_off_counts_only_consecutive)
{
    if (!mapped())
        return;
    const st_circuit_t cb = {.failures = 3, .cooldown_s = 5, .failure_ratio = 0, .window_ms = 10000, .min_requests = 1};
    int s = 4;
    uint64_t t = 13000000;
    for (int i = 0; i < 40; i++) {
        CHECK_INT(st_target_failure(s, &cb, t + (uint64_t)i), ST_STAYS_CLOSED);
        st_target_success(s, &cb, t + (uint64_t)i);
    }
    CHECK(usable(s, t + 100));
}

TEST(state_circuit_bad_slot_is_harmless)
{
    if (!mapped())
        return;
    const st_circuit_t cb = {.failures = 1, .cooldown_s = 5, .failure_ratio = 0.5, .window_ms = 10000, .min_requests = 1};
    CHECK_INT(st_target_failure(-1, &cb, 1), ST_STAYS_CLOSED);
    CHECK_INT(st_target_failure(ST_TARGETS, &cb, 1), ST_STAYS_CLOSED);
    st_target_success(ST_TARGETS + 5, &cb, 1);
    CHECK(usable(-1, 1));
}
