/* worker/backend/be_triton.c: decoding Triton's answers, on hostile values (found by
 * tests/fuzz/fuzz_triton_answer.c). The decoding is static, so this file includes the source
 * (its object is left out of the link). */
#include <unistd.h>

#include "worker/backend/be_triton.c"
#include "unit.h"

/* One streamed response whose num_output_tokens (INT64) is n. */
static void respond_tokens(be_call_t *c, long long n)
{
    uint8_t raw[8];
    for (int i = 0; i < 8; i++)
        raw[i] = (uint8_t)((unsigned long long)n >> (8 * i));
    Inference__ModelInferResponse__InferOutputTensor t = INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
    t.name = "num_output_tokens";
    t.datatype = "INT64";
    Inference__ModelInferResponse__InferOutputTensor *outs[] = {&t};
    ProtobufCBinaryData contents[] = {{8, raw}};
    Inference__ModelInferResponse ir = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    ir.n_outputs = ir.n_raw_output_contents = 1;
    ir.outputs = outs;
    ir.raw_output_contents = contents;
    Inference__ModelStreamInferResponse r = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    r.infer_response = &ir;
    be_event_t ev = {0};
    handle_response(c, &r, &ev);
}

/* Two huge token counts add up without overflowing (UBSan ends the child otherwise). */
static void huge_token_counts(void)
{
    cfg_model_t m = {.name = "m", .profile = PROFILE_TRTLLM};
    be_call_t c = {.model = &m, .kind = KIND_COMPLETIONS, .prompt_tokens = 0, .completion_tokens = -1};
    respond_tokens(&c, 0x7000000000000000LL);
    respond_tokens(&c, 0x7000000000000000LL);
    json_object *u = usage_obj(&c), *total;
    int ok = c.completion_tokens > 0 && json_object_object_get_ex(u, "total_tokens", &total) &&
             json_object_get_int64(total) == c.completion_tokens;
    json_object_put(u);
    _exit(ok ? 0 : 1);
}

TEST(triton_huge_token_counts_do_not_overflow)
{
    int rc = unit_run_child(huge_token_counts);
    CHECK_MSG(rc == 0, "num_output_tokens near 2^63 twice: child status %d (1: wrong count or UBSan's overflow)", rc);
}
