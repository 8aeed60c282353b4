/* worker/backend/http_backend.c: the SSE parser a backend's stream goes through (the WHATWG
 * event-stream rules airouter relies on). Bytes are fed as on_body gets them, in reads cut
 * anywhere; the queued chunks are handed out as hb_next would. The parser is static, so this
 * file includes the source (its object is left out of the link). */
#include "worker/backend/http_backend.c"
#include "unit.h"

static const cfg_backend_t sse_be = {.name = (char *)"b", .type = (char *)"openai",
                                     .url = (char *)"http://10.0.0.1:8000/v1"};

static hb_call_t *sse_call(size_t max_event, bool chunk_text)
{
    hb_call_t *c = calloc(1, sizeof *c);
    c->be = &sse_be;
    c->stream = c->is_sse = true;
    c->backend_model = strdup("backend-model");
    c->client_model = strdup("client-model");
    c->chunk_text = chunk_text;
    c->max_event = max_event;
    c->lines.max_line = max_event;
    if (chunk_text)
        buf_append_json_string(&c->model_json, c->client_model);
    return c;
}

/* Hands every queued chunk out, appending its JSON and a '|' to out. */
static void sse_drain(hb_call_t *c, buf_t *out)
{
    while (c->qlen) {
        be_event_t ev = {0};
        queue_pop(c, &ev);
        if (ev.obj)
            buf_appends(out, json_object_to_json_string_ext(ev.obj, JSON_C_TO_STRING_PLAIN));
        else
            buf_append(out, ev.data, ev.len);
        buf_append(out, "|", 1);
        json_object_put(ev.obj);
    }
}

/* Feeds stream (len bytes) in reads whose ends are cuts[] (ascending, the last one len), ends
 * the stream when it was not refused, and returns what came out; *failed says whether the
 * stream failed (the caller reads c->failure before freeing c). */
static char *sse_run_cuts(hb_call_t *c, const char *stream, size_t len, const size_t *cuts, int ncuts)
{
    buf_t out = {0};
    buf_appends(&out, "");
    size_t off = 0;
    for (int i = 0; i < ncuts && off < len; i++) {
        if (sse_feed(c, stream + off, cuts[i] - off) < 0)
            break;
        off = cuts[i];
        sse_drain(c, &out);
    }
    if (!c->stream_failed)
        sse_end(c);
    sse_drain(c, &out);
    return out.data;
}

/* The whole stream in reads of step bytes. */
static char *sse_run_steps(hb_call_t *c, const char *stream, size_t step)
{
    size_t len = strlen(stream), cuts[4096];
    int n = 0;
    for (size_t at = step; n < 4095; at += step) {
        cuts[n++] = at < len ? at : len;
        if (at >= len)
            break;
    }
    return sse_run_cuts(c, stream, len, cuts, n);
}

/* What a stream gives in one read, checked against every two- and three-read split and every
 * read size. */
static void sse_expect_any_split(const char *stream, bool chunk_text, const char *want)
{
    size_t len = strlen(stream);
    for (size_t i = 0; i <= len; i++)
        for (size_t j = i; j <= len; j++) {
            hb_call_t *c = sse_call(4096, chunk_text);
            size_t cuts[] = {i, j, len};
            char *got = sse_run_cuts(c, stream, len, cuts, 3);
            bool ok = strcmp(got, want) == 0 && !c->stream_failed;
            if (!CHECK_MSG(ok, "reads ending at %zu, %zu: got \"%s\", want \"%s\"%s", i, j, got, want,
                           c->stream_failed ? " (stream failed)" : "")) {
                free(got);
                call_free(c);
                return;
            }
            free(got);
            call_free(c);
        }
    for (size_t step = 1; step <= len; step++) {
        hb_call_t *c = sse_call(4096, chunk_text);
        char *got = sse_run_steps(c, stream, step);
        CHECK_MSG(strcmp(got, want) == 0 && !c->stream_failed, "reads of %zu: got \"%s\"", step, got);
        free(got);
        call_free(c);
    }
}

TEST(sse_events_split_across_reads_at_every_byte)
{
    /* fields other than data, comments, a multi-line event, [DONE], CRLF and LF line ends; parsed
     * chunks keep the backend's model (the backend type renames it) */
    const char *stream = ": keep-alive\n"
                         "event: message\r\n"
                         "id: 7\n"
                         "retry: 1000\n"
                         "data: {\"model\":\"backend-model\",\"a\":1}\r\n\r\n"
                         "data:{\"b\":\n"
                         "data: 2}\n\n"
                         "data: [DONE]\n\n";
    sse_expect_any_split(stream, false, "{\"model\":\"backend-model\",\"a\":1}|{\"b\":2}|");
}

TEST(sse_chunk_text_renames_the_model_at_every_split)
{
    const char *stream = "data: {\"id\":\"x\",\"model\":\"backend-model\",\"choices\":[]}\n\n"
                         "data: {\"model\":\"backend-model\"}\r\n\r\ndata: [DONE]\n\n";
    sse_expect_any_split(stream, true,
                         "{\"id\":\"x\",\"model\":\"client-model\",\"choices\":[]}|{\"model\":\"client-model\"}|");
}

TEST(sse_line_ends_cr_lf_and_crlf)
{
    /* The event-stream format ends a line with CRLF, LF or a lone CR, mixed freely. */
    sse_expect_any_split("data: {\"a\":1}\r\rdata: {\"b\":2}\n\ndata: {\"c\":3}\r\n\r\n"
                         "data: {\"d\":\rdata: 4}\r\n\n",
                         false, "{\"a\":1}|{\"b\":2}|{\"c\":3}|{\"d\":4}|");
    /* a CR at the end of one read and its LF at the start of the next are one line end */
    hb_call_t *c = sse_call(4096, false);
    const char *s = "data: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\n";
    size_t cuts[] = {14, 15, 16, strlen(s)};
    char *got = sse_run_cuts(c, s, strlen(s), cuts, 4);
    CHECK_STR(got, "{\"a\":1}|{\"b\":2}|");
    free(got);
    call_free(c);
}

TEST(sse_byte_order_mark_at_the_start_is_dropped)
{
    /* the event-stream format drops one UTF-8 BOM before the first field */
    sse_expect_any_split("\xEF\xBB\xBF" "data: {\"a\":1}\n\n", false, "{\"a\":1}|");
}

TEST(sse_empty_and_done_data_make_no_chunk)
{
    sse_expect_any_split("data:\n\ndata: \n\n\n\n\r\n: only a comment\n\nevent: ping\n\n", false, "");
    sse_expect_any_split("data: [DONE]\n\n", false, "");
    /* a data line that does not start with "data:" exactly is another field */
    sse_expect_any_split("Data: {\"a\":1}\n\ndata {\"b\":2}\n\n", false, "");
}

TEST(sse_last_event_without_blank_line_counts)
{
    sse_expect_any_split("data: {\"a\":1}\n\ndata: {\"b\":2}", false, "{\"a\":1}|{\"b\":2}|");
    sse_expect_any_split("data: {\"a\":1}\n", false, "{\"a\":1}|");
}

TEST(sse_line_over_the_bound_fails_the_stream_cleanly)
{
    /* a line one byte over max_event, in one read and byte by byte: a 502, memory let go */
    char line[200];
    snprintf(line, sizeof line, "data: {\"a\":\"%0*d\"}\n\n", 64 - 13, 0); /* the line: 65 bytes */
    for (size_t step = 1; step <= strlen(line); step += strlen(line) - 1) {
        hb_call_t *c = sse_call(64, false);
        char *got = sse_run_steps(c, line, step);
        CHECK_STR(got, "");
        CHECK(c->stream_failed);
        CHECK_INT(c->failure.type, BE_EV_ERROR);
        CHECK_INT(c->failure.status, 502);
        CHECK(strstr(c->failure.message, "larger than 64 bytes") != NULL);
        CHECK(c->lines.partial.data == NULL && c->data.data == NULL);
        free(got);
        call_free(c);
    }
    /* exactly at the bound: relayed */
    snprintf(line, sizeof line, "data: {\"a\":\"%0*d\"}\n\n", 64 - 14, 0);
    hb_call_t *c = sse_call(64, false);
    char *got = sse_run_steps(c, line, 1);
    CHECK(!c->stream_failed && strlen(got) == 64 - 6 + 1);
    free(got);
    call_free(c);
}

TEST(sse_endless_line_is_refused_within_the_bound)
{
    /* a backend that never ends its line: refused once the line passes the bound, never held whole */
    hb_call_t *c = sse_call(16 * 1024, false);
    char piece[1000];
    memset(piece, 'x', sizeof piece);
    size_t fed = 0, most = 0;
    int rc = sse_feed(c, "data: ", 6);
    while (rc == 0 && fed < 10 * 1024 * 1024) {
        rc = sse_feed(c, piece, sizeof piece);
        fed += sizeof piece;
        if (c->lines.partial.cap > most)
            most = c->lines.partial.cap;
    }
    CHECK_INT(rc, -1);
    CHECK_MSG(fed <= 16 * 1024 + 2 * sizeof piece, "refused after %zu bytes", fed);
    CHECK_MSG(most <= 2 * (16 * 1024 + 2), "held up to %zu bytes", most);
    CHECK(c->stream_failed && c->failure.status == 502);
    call_free(c);
}

TEST(sse_event_of_many_lines_over_the_bound_fails)
{
    /* each line fits, their sum does not */
    char stream[400] = "";
    for (int i = 0; i < 10; i++)
        strcat(stream, "data: 0123456789\n");
    strcat(stream, "\n");
    hb_call_t *c = sse_call(64, false);
    char *got = sse_run_steps(c, stream, 7);
    CHECK_STR(got, "");
    CHECK(c->stream_failed && c->failure.status == 502);
    free(got);
    call_free(c);
}

TEST(sse_malformed_and_error_events)
{
    /* an event that is not a JSON object: a 502 protocol error, chunks before it are kept */
    const char *bad[] = {"data: {\"a\":1}\n\ndata: {\"b\":\n\n", "data: {\"a\":1}\n\ndata: [1,2]\n\n",
                         "data: {\"a\":1}\n\ndata: hello\n\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hb_call_t *c = sse_call(4096, false);
        char *got = sse_run_steps(c, bad[i], 5);
        CHECK_STR(got, "{\"a\":1}|");
        CHECK_MSG(c->stream_failed && c->failure.error == BE_ERR_PROTOCOL && c->failure.status == 502,
                  "stream %zu", i);
        free(got);
        call_free(c);
    }
    /* an error object after the 200: a 502 with the backend's message, the backend's model hidden */
    hb_call_t *c = sse_call(4096, true);
    char *got = sse_run_steps(
        c, "data: {\"model\":\"backend-model\"}\n\n"
           "data: {\"error\":{\"message\":\"backend-model is overloaded\",\"type\":\"overloaded\",\"code\":\"busy\"}}\n\n"
           "data: {\"model\":\"after\"}\n\n",
        3);
    CHECK_STR(got, "{\"model\":\"client-model\"}|");
    CHECK(c->stream_failed && c->failure.error == BE_ERR_HTTP_5XX && c->failure.status == 502);
    CHECK(strstr(c->failure.message, "backend-model") == NULL);
    CHECK(strstr(c->failure.message, "client-model is overloaded") != NULL);
    CHECK_STR(c->failure.err_type, "overloaded");
    CHECK_STR(c->failure.err_code, "busy");
    free(got);
    call_free(c);
}

TEST(sse_anthropic_error_event_after_the_200)
{
    /* Anthropic's stream reports overload as an "error" event once the 200 has gone out */
    hb_call_t *c = sse_call(4096, false);
    char *got = sse_run_steps(c,
                              "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n"
                              "event: ping\ndata: {\"type\": \"ping\"}\n\n"
                              "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                              "\"message\":\"Overloaded\"}}\n\n",
                              11);
    CHECK_STR(got, "{\"type\":\"message_start\",\"message\":{}}|{\"type\":\"ping\"}|");
    CHECK(c->stream_failed && c->failure.status == 502);
    CHECK_STR(c->failure.err_type, "overloaded_error");
    CHECK_STR(c->failure.message, "Overloaded");
    free(got);
    call_free(c);
}
