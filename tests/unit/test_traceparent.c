/* worker/core/traceparent.c and trace_begin: the W3C Trace Context traceparent header. */
#include "unit.h"
#include "worker/core/trace.h"
#include "worker/core/traceparent.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

static bool parses(const char *h)
{
    traceparent_t tp;
    return traceparent_parse(h, &tp);
}

TEST(traceparent_valid_header)
{
    traceparent_t tp;
    CHECK(traceparent_parse("00-" TID "-" PID "-01", &tp));
    CHECK_INT(tp.version, 0);
    CHECK_STR(tp.trace_id, TID);
    CHECK_STR(tp.parent_id, PID);
    CHECK_INT(tp.flags, 1);
    CHECK(tp.flags & TRACEPARENT_SAMPLED);
    CHECK(traceparent_parse("00-" TID "-" PID "-00", &tp));
    CHECK(!(tp.flags & TRACEPARENT_SAMPLED));
    /* flags other than sampled are kept as sent */
    CHECK(traceparent_parse("00-" TID "-" PID "-fe", &tp));
    CHECK_INT(tp.flags, 0xfe);
    CHECK(!(tp.flags & TRACEPARENT_SAMPLED));
    CHECK(traceparent_parse("00-" TID "-" PID "-03", &tp) && (tp.flags & TRACEPARENT_SAMPLED));
    /* ids with leading zeros, or one non-zero digit, are fine */
    CHECK(parses("00-00000000000000000000000000000001-0000000000000001-01"));
}

TEST(traceparent_version_ff_and_bad_versions_rejected)
{
    CHECK(!parses("ff-" TID "-" PID "-01"));
    CHECK(!parses("ff-" TID "-" PID "-01-extra"));
    CHECK(!parses("0g-" TID "-" PID "-01"));
    CHECK(!parses("0-" TID "-" PID "-01x"));
    CHECK(!parses("FE-" TID "-" PID "-01"));
}

TEST(traceparent_all_zero_ids_rejected)
{
    CHECK(!parses("00-00000000000000000000000000000000-" PID "-01"));
    CHECK(!parses("00-" TID "-0000000000000000-01"));
    CHECK(!parses("01-00000000000000000000000000000000-" PID "-01"));
}

TEST(traceparent_uppercase_hex_rejected)
{
    CHECK(!parses("00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01"));
    CHECK(!parses("00-" TID "-00F067AA0BA902B7-01"));
    CHECK(!parses("00-" TID "-" PID "-0A"));
    CHECK(!parses("0A-" TID "-" PID "-01"));
}

TEST(traceparent_wrong_lengths_and_separators_rejected)
{
    CHECK(!parses(NULL));
    CHECK(!parses(""));
    CHECK(!parses("00"));
    CHECK(!parses("00-" TID "-" PID "-1"));                     /* flags one digit */
    CHECK(!parses("00-" TID "-" PID "-011"));                   /* flags three digits */
    CHECK(!parses("00-" TID "0-" PID "-01"));                   /* trace id 33 digits */
    CHECK(!parses("00-4bf92f3577b34da6a3ce929d0e0e473-" PID "-01")); /* 31 */
    CHECK(!parses("00-" TID "-00f067aa0ba902b-01"));            /* parent id 15 */
    CHECK(!parses("00-" TID "-" PID "0-01"));                   /* 17 */
    CHECK(!parses("00_" TID "-" PID "-01"));
    CHECK(!parses("00-" TID "_" PID "-01"));
    CHECK(!parses("00-" TID "-" PID "_01"));
    /* version 00 has nothing after the flags, not even a dash */
    CHECK(!parses("00-" TID "-" PID "-01-"));
    CHECK(!parses("00-" TID "-" PID "-01-what"));
    CHECK(!parses("00-" TID "-" PID "-01 "));
    CHECK(!parses(" 00-" TID "-" PID "-01"));
    /* a NUL inside ends the string: too short */
    CHECK(!parses("00-" TID "-" PID "\0-01"));
}

TEST(traceparent_future_version_accepted_with_extra_fields)
{
    traceparent_t tp;
    CHECK(traceparent_parse("01-" TID "-" PID "-01", &tp) && tp.version == 1);
    CHECK(traceparent_parse("cc-" TID "-" PID "-01-what-the-future-will-be-like", &tp));
    CHECK_INT(tp.version, 0xcc);
    CHECK_STR(tp.trace_id, TID);
    CHECK_STR(tp.parent_id, PID);
    CHECK_INT(tp.flags, 1);
    /* the fields it shares with 00 still follow 00's rules */
    CHECK(!parses("cc-" TID "-" PID "-01what"));
    CHECK(!parses("cc-" TID "-" PID "-1"));
    CHECK(!parses("cc-" TID "-" PID "-0z-x"));
    CHECK(!parses("cc-00000000000000000000000000000000-" PID "-01-x"));
}

TEST(traceparent_format_writes_version_00)
{
    traceparent_t tp;
    char out[TRACEPARENT_LEN + 1];
    CHECK(traceparent_parse("cc-" TID "-" PID "-09-more", &tp));
    traceparent_format(&tp, out, sizeof out);
    CHECK_STR(out, "00-" TID "-" PID "-09");
    tp.flags = 0;
    traceparent_format(&tp, out, sizeof out);
    CHECK_STR(out, "00-" TID "-" PID "-00");
}

TEST(traceparent_trace_begin_continues_or_starts)
{
    request_t req = {0};
    trace_begin(&req, "00-" TID "-" PID "-00");
    CHECK_STR(req.trace_id, TID);
    CHECK_STR(req.parent_span_id, PID);
    CHECK_STR(req.client_traceparent, "00-" TID "-" PID "-00");
    CHECK_INT(strlen(req.span_id), 16);
    CHECK(strcmp(req.span_id, PID) != 0);
    /* not tracing: the client's context goes to the backend unchanged, a later version as 00 */
    char hdr[64];
    trace_backend_header(&req, 0, hdr, sizeof hdr);
    CHECK_STR(hdr, "00-" TID "-" PID "-00");
    request_t later = {0};
    trace_begin(&later, "42-" TID "-" PID "-01-x");
    trace_backend_header(&later, 0, hdr, sizeof hdr);
    CHECK_STR(hdr, "00-" TID "-" PID "-01");
    /* an invalid header: a new trace, nothing to pass on */
    request_t fresh = {0};
    trace_begin(&fresh, "00-" TID "-0000000000000000-01");
    CHECK_INT(strlen(fresh.trace_id), 32);
    CHECK(strcmp(fresh.trace_id, TID) != 0);
    CHECK_STR(fresh.parent_span_id, "");
    CHECK_STR(fresh.client_traceparent, "");
    trace_backend_header(&fresh, 0, hdr, sizeof hdr);
    CHECK_STR(hdr, "");
}
