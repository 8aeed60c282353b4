/* The byte relay's SSE rewriter (shape_sse_feed in worker/oai/oai_shape.c): a backend's
 * /v1/responses or passthrough stream, cut into reads at fuzzed places, has the model renamed
 * in each JSON data line; every other line must come out as it went in, and a line longer than
 * the bound (4 KB here) ends the stream.
 * Input: byte 0 picks the read sizes; the rest is the stream. */
#include "fuzz.h"

#include <stdbool.h>

#include "worker/oai/oai_shape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t seed = data[0];
    data++, size--;
    shape_sse_t s = SHAPE_SSE_INIT(4096);
    bool over = false;
    buf_t out = {0};
    unsigned state = 0;
    for (size_t off = 0; off < size;) {
        size_t n = fuzz_piece(seed, size - off, &state);
        if (shape_sse_feed(&s, (const char *)data + off, n, "client-model", &out) < 0) {
            over = true;
            break;
        }
        off += n;
    }
    shape_sse_finish(&s, "client-model", &out);
    if (over) {
        buf_free(&out);
        return 0;
    }
    /* Lines are relayed one for one: as many line ends out ("\n") as went in ("\r\n", "\n" or
     * a lone "\r"), plus one for a last unterminated line. */
    size_t lines_in = 0, lines_out = 0;
    for (size_t i = 0; i < size; i++)
        lines_in += data[i] == '\n' ? !(i > 0 && data[i - 1] == '\r') : data[i] == '\r';
    if (size && data[size - 1] != '\n' && data[size - 1] != '\r')
        lines_in++;
    for (size_t i = 0; i < out.len; i++)
        lines_out += out.data[i] == '\n';
    FUZZ_ASSERT(lines_out == lines_in);
    buf_free(&out);
    return 0;
}
