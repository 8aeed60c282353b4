#include "common/quota.h"

#include <math.h>
#include <time.h>

#include "common/config.h"

long long quota_estimate(size_t body_bytes, long long request_max_tokens, long long model_max_tokens,
                         bool has_completion)
{
    long long prompt = (long long)(body_bytes / 4);
    long long completion = !has_completion           ? 0
                           : request_max_tokens > 0 ? request_max_tokens
                           : model_max_tokens > 0   ? model_max_tokens
                                                    : QUOTA_DEFAULT_COMPLETION;
    long long sum = prompt + completion;
    return sum > 0 ? sum : 1;
}

long long quota_settled(long long reserved, quota_outcome_t outcome, long long used)
{
    switch (outcome) {
    case QUOTA_USAGE:
        return used > 0 ? used : 0;
    case QUOTA_FAILED:
        return 0;
    case QUOTA_NO_USAGE:
    default:
        return reserved > 0 ? reserved : 0;
    }
}

unsigned long long quota_add(unsigned long long count, long long delta, unsigned long long max)
{
    if (delta < 0)
        return (unsigned long long)-delta >= count ? 0 : count - (unsigned long long)-delta;
    unsigned long long d = (unsigned long long)delta;
    return d >= max - (count < max ? count : max) ? max : count + d;
}

long long quota_cost_micro(const quota_price_t *p, long long prompt, long long cached, long long completion)
{
    if (prompt < 0)
        prompt = 0;
    if (completion < 0)
        completion = 0;
    if (cached < 0)
        cached = 0;
    if (cached > prompt)
        cached = prompt;
    /* dollars per million tokens are micro-dollars per token */
    double micro = (double)(prompt - cached) * p->input + (double)cached * p->cached_input +
                   (double)completion * p->output;
    return (long long)ceil(micro - 1e-9);
}

unsigned long long quota_period_id(int period, long long now)
{
    long long day = now / 86400;
    struct tm tm;
    time_t t = (time_t)now;
    switch (period) {
    case BUDGET_DAY:
        return (unsigned long long)day;
    case BUDGET_WEEK:
        return (unsigned long long)((day + 3) / 7); /* 1970-01-01 was a Thursday: weeks start on Monday */
    case BUDGET_MONTH:
        gmtime_r(&t, &tm);
        return (unsigned long long)(tm.tm_year + 1900) * 12 + (unsigned long long)tm.tm_mon;
    default:
        return 0;
    }
}

long long quota_period_left(int period, long long now)
{
    long long day = now / 86400, next;
    struct tm tm;
    time_t t = (time_t)now;
    switch (period) {
    case BUDGET_DAY:
        next = (day + 1) * 86400;
        break;
    case BUDGET_WEEK:
        next = (((day + 3) / 7 + 1) * 7 - 3) * 86400;
        break;
    case BUDGET_MONTH:
        gmtime_r(&t, &tm);
        tm.tm_mday = 1;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        tm.tm_mon += 1;
        next = (long long)timegm(&tm);
        break;
    default:
        return 0;
    }
    return next - now;
}
