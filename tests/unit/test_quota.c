/* common/quota.c and the shared-memory token reservation in common/state.c */
#include "common/config.h"
#include "common/quota.h"
#include "common/state.h"
#include "unit.h"

TEST(quota_estimate_sources)
{
    /* the request's max_tokens wins, then the model's, then 1024 */
    CHECK_INT(quota_estimate(400, 50, 300, true), 100 + 50);
    CHECK_INT(quota_estimate(400, 0, 300, true), 100 + 300);
    CHECK_INT(quota_estimate(400, 0, 0, true), 100 + QUOTA_DEFAULT_COMPLETION);
    CHECK_INT(quota_estimate(400, -5, 0, true), 100 + QUOTA_DEFAULT_COMPLETION);
    /* embeddings: the prompt only, and never zero */
    CHECK_INT(quota_estimate(400, 50, 300, false), 100);
    CHECK_INT(quota_estimate(2, 0, 0, false), 1);
}

TEST(quota_settled_outcomes)
{
    CHECK_INT(quota_settled(1100, QUOTA_USAGE, 37), 37);
    CHECK_INT(quota_settled(1100, QUOTA_USAGE, 5000), 5000); /* more than reserved: the truth counts */
    CHECK_INT(quota_settled(1100, QUOTA_FAILED, 0), 0);
    CHECK_INT(quota_settled(1100, QUOTA_NO_USAGE, 0), 1100);
}

TEST(quota_add_bounds)
{
    CHECK_INT((long long)quota_add(10, -3, 100), 7);
    CHECK_INT((long long)quota_add(10, -30, 100), 0);
    CHECK_INT((long long)quota_add(10, 30, 100), 40);
    CHECK_INT((long long)quota_add(90, 30, 100), 100);
    CHECK_INT((long long)quota_add(100, 1, 100), 100);
}

static bool mapped(void)
{
    static int done;
    if (!done)
        done = st_init() == 0 ? 1 : -1;
    return CHECK_MSG(done == 1, "st_init");
}

TEST(state_token_reservation)
{
    if (!mapped())
        return;
    cfg_key_t k = {.name = "reserve", .tpm = 1000, .state_slot = 200};
    uint64_t now = 60000ull * 1000 + 5000, w1, w2, w3;
    int retry;
    /* Three concurrent requests of 400: the first three pass while the window is under
     * its limit, the fourth sees it full; the overshoot is below one reservation. */
    CHECK_INT(st_key_reserve(&k, 400, now, &w1, &retry), 0);
    CHECK_INT(st_key_reserve(&k, 400, now, &w2, &retry), 0);
    CHECK_INT(st_key_reserve(&k, 400, now, &w3, &retry), 0);
    CHECK_INT((long long)st_key_tokens_used(&k, now), 1200);
    uint64_t w4;
    CHECK_INT(st_key_reserve(&k, 400, now, &w4, &retry), 't');
    CHECK_INT(retry, 55);
    /* settle: one used 100, one failed (given back), one had no usage (kept) */
    st_key_settle(&k, w1, 400, quota_settled(400, QUOTA_USAGE, 100), now);
    st_key_settle(&k, w2, 400, quota_settled(400, QUOTA_FAILED, 0), now);
    st_key_settle(&k, w3, 400, quota_settled(400, QUOTA_NO_USAGE, 0), now);
    CHECK_INT((long long)st_key_tokens_used(&k, now), 500);
    CHECK_INT(st_key_reserve(&k, 400, now, &w4, &retry), 0);
    /* a settlement after its window ended leaves the new window alone */
    uint64_t later = now + 60000;
    CHECK_INT((long long)st_key_tokens_used(&k, later), 0);
    st_key_settle(&k, w4, 400, 0, later);
    CHECK_INT((long long)st_key_tokens_used(&k, later), 0);
    CHECK_INT(st_key_reserve(&k, 400, later, &w4, &retry), 0);
    CHECK_INT((long long)st_key_tokens_used(&k, later), 400);
    /* a key without tpm reserves nothing */
    cfg_key_t free_key = {.name = "free", .state_slot = 201};
    CHECK_INT(st_key_reserve(&free_key, 400, now, &w1, &retry), 0);
    CHECK_INT((long long)w1, 0);
}

TEST(quota_cost_prices)
{
    quota_price_t p = {.input = 2.50, .output = 10.0, .cached_input = 1.25};
    /* 1000 prompt (200 cached) + 500 completion: 800*2.5 + 200*1.25 + 500*10 = 7250 micro-dollars */
    CHECK_INT(quota_cost_micro(&p, 1000, 200, 500), 7250);
    CHECK_INT(quota_cost_micro(&p, 1000, 0, 0), 2500);
    CHECK_INT(quota_cost_micro(&p, 1, 0, 0), 3); /* 2.5 rounds up */
    CHECK_INT(quota_cost_micro(&p, 10, 50, 0), 13); /* cached beyond the prompt: all cached, 12.5 up */
    CHECK_INT(quota_cost_micro(&p, -1, -1, -1), 0);
    quota_price_t free_model = {0};
    CHECK_INT(quota_cost_micro(&free_model, 1000, 0, 1000), 0);
}

TEST(quota_budget_periods)
{
    long long t = 1764547200; /* 2025-12-01 00:00:00 UTC, a Monday */
    CHECK_INT(quota_period_left(BUDGET_DAY, t), 86400);
    CHECK_INT(quota_period_left(BUDGET_DAY, t + 86399), 1);
    CHECK_INT(quota_period_left(BUDGET_WEEK, t), 7 * 86400);
    CHECK_INT(quota_period_left(BUDGET_WEEK, t - 1), 1); /* Sunday 23:59:59 */
    CHECK_INT(quota_period_left(BUDGET_MONTH, t), 31 * 86400);
    CHECK_INT(quota_period_left(BUDGET_MONTH, t - 1), 1);
    CHECK_INT(quota_period_left(BUDGET_TOTAL, t), 0);
    CHECK(quota_period_id(BUDGET_DAY, t) != quota_period_id(BUDGET_DAY, t - 1));
    CHECK(quota_period_id(BUDGET_WEEK, t) != quota_period_id(BUDGET_WEEK, t - 1));
    CHECK(quota_period_id(BUDGET_WEEK, t) == quota_period_id(BUDGET_WEEK, t + 6 * 86400 + 86399));
    CHECK(quota_period_id(BUDGET_MONTH, t) != quota_period_id(BUDGET_MONTH, t - 1));
    CHECK(quota_period_id(BUDGET_MONTH, t) == quota_period_id(BUDGET_MONTH, t + 30 * 86400));
    CHECK_INT((long long)quota_period_id(BUDGET_TOTAL, t), 0);
}
