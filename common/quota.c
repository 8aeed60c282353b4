#include "quota.h"

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
