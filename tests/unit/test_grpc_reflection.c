/* worker/grpc/grpc_reflection.c, against the descriptors the build embeds */
#include "worker/grpc/grpc_reflection.h"
#include "reflection.pb-c.h"
#include "unit.h"

#include <stdlib.h>

typedef Grpc__Reflection__V1__ServerReflectionRequest req_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse resp_t;

/* The unpacked answer to req (NULL if there was none). */
static resp_t *ask(req_t *req)
{
    uint8_t in[512], *out = NULL;
    size_t len = grpc__reflection__v1__server_reflection_request__pack(req, in), out_len = 0;
    if (grpc_reflection_answer(in, len, &out, &out_len) != 0)
        return NULL;
    resp_t *resp = grpc__reflection__v1__server_reflection_response__unpack(NULL, out_len, out);
    free(out);
    return resp;
}

static resp_t *ask_symbol(const char *symbol)
{
    req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    req.file_containing_symbol = (char *)symbol;
    return ask(&req);
}

/* The name (field 1) of a serialized FileDescriptorProto, when it is short and comes first. */
static const char *file_name(const ProtobufCBinaryData *fd, char *buf, size_t size)
{
    if (fd->len < 2 || fd->data[0] != 0x0a || fd->data[1] >= size || fd->data[1] + 2u > fd->len)
        return "";
    memcpy(buf, fd->data + 2, fd->data[1]);
    buf[fd->data[1]] = 0;
    return buf;
}

static void free_resp(resp_t *r) { grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL); }

TEST(grpc_reflection_list_services)
{
    CHECK_INT(grpc_reflection_init(), 0);
    req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.host = "h:1";
    req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    req.list_services = "";
    resp_t *r = ask(&req);
    if (CHECK(r) && CHECK_INT(r->message_response_case,
                              GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE)) {
        CHECK_STR(r->valid_host, "h:1");
        CHECK(r->original_request && r->original_request->message_request_case == req.message_request_case);
        CHECK_INT(r->list_services_response->n_service, 3);
        const char *want[] = {"ai_router.AIRouter", "grpc.reflection.v1.ServerReflection",
                              "grpc.reflection.v1alpha.ServerReflection"};
        for (size_t w = 0; w < 3; w++) {
            bool found = false;
            for (size_t i = 0; i < r->list_services_response->n_service; i++)
                found |= strcmp(r->list_services_response->service[i]->name, want[w]) == 0;
            CHECK_MSG(found, "service %s listed", want[w]);
        }
    }
    free_resp(r);
    grpc_reflection_free();
}

TEST(grpc_reflection_symbols)
{
    CHECK_INT(grpc_reflection_init(), 0);
    const char *in_api[] = {"ai_router.AIRouter", "ai_router.AIRouter.RouteRequest", "ai_router.AIRouter.StreamingRouteRequest",
                            "ai_router.AIRequest", "ai_router.AIRequest.max_tokens", "ai_router.AIRequest.ParametersEntry",
                            "ai_router.AIRequest.ParametersEntry.value", "ai_router.AIResponse.content"};
    for (size_t i = 0; i < sizeof in_api / sizeof *in_api; i++) {
        resp_t *r = ask_symbol(in_api[i]);
        char name[64];
        if (CHECK_MSG(r && r->message_response_case ==
                               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE,
                      "%s: a file", in_api[i]) &&
            CHECK_INT(r->file_descriptor_response->n_file_descriptor_proto, 1))
            CHECK_STR(file_name(&r->file_descriptor_response->file_descriptor_proto[0], name, sizeof name), "ai_router.proto");
        free_resp(r);
    }
    const char *in_reflection[] = {"grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflectionRequest.list_services",
                                   "grpc.reflection.v1.ServerReflectionRequest.message_request"};
    const char *file[] = {"reflection_v1alpha.proto", "reflection.proto", "reflection.proto"};
    for (size_t i = 0; i < 3; i++) {
        resp_t *r = ask_symbol(in_reflection[i]);
        char name[64];
        if (CHECK_MSG(r && r->file_descriptor_response && r->file_descriptor_response->n_file_descriptor_proto == 1, "%s",
                      in_reflection[i]))
            CHECK_STR(file_name(&r->file_descriptor_response->file_descriptor_proto[0], name, sizeof name), file[i]);
        free_resp(r);
    }
    char long_name[2000]; /* the error message quotes a bounded part of the name */
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    req_t big = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    big.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    big.file_containing_symbol = long_name;
    uint8_t in[2100], *out = NULL;
    size_t len = grpc__reflection__v1__server_reflection_request__pack(&big, in), out_len = 0;
    if (CHECK_INT(grpc_reflection_answer(in, len, &out, &out_len), 0)) {
        resp_t *r = grpc__reflection__v1__server_reflection_response__unpack(NULL, out_len, out);
        if (CHECK(r && r->error_response))
            CHECK_MSG(strlen(r->error_response->error_message) < 300, "message of %zu bytes",
                      strlen(r->error_response->error_message));
        free_resp(r);
    }
    free(out);
    const char *unknown[] = {"ai_router", "ai_router.AIRouter.", ".ai_router.AIRouter", "ai_router.AIRouterX", "", "inference.GRPCInferenceService"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        resp_t *r = ask_symbol(unknown[i]);
        if (CHECK_MSG(r && r->message_response_case ==
                               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE,
                      "'%s': an error", unknown[i]))
            CHECK_INT(r->error_response->error_code, 5);
        free_resp(r);
    }
    grpc_reflection_free();
}

TEST(grpc_reflection_bad_requests)
{
    CHECK_INT(grpc_reflection_init(), 0);
    uint8_t *out = NULL;
    size_t out_len = 0;
    const uint8_t truncated[] = {0x22, 0x05, 'a', 'b'}; /* field 4 says 5 bytes, has 2 */
    CHECK_INT(grpc_reflection_answer(truncated, sizeof truncated, &out, &out_len), -1);
    req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT; /* asks for nothing */
    resp_t *r = ask(&req);
    if (CHECK(r && r->error_response))
        CHECK_INT(r->error_response->error_code, 3);
    free_resp(r);
    req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
    req.file_by_filename = "triton.proto"; /* the Triton client's proto is not served */
    r = ask(&req);
    if (CHECK(r && r->error_response))
        CHECK_INT(r->error_response->error_code, 5);
    free_resp(r);
    grpc_reflection_free();
}
