/* gRPC server reflection: the answers of grpc.reflection.v1(alpha).ServerReflection, from the
 * descriptors of the served .proto files that the build embeds. No grpc headers: grpc_api.c
 * carries the stream, this module turns one request message into one response message. */
#ifndef AIROUTER_GRPC_REFLECTION_H
#define AIROUTER_GRPC_REFLECTION_H
#include <stddef.h>
#include <stdint.h>

/* Indexes the embedded descriptors (files, the symbols each declares, the services). Call once
 * before the first answer and before any thread answers; 0, or -1 if the embedded set is corrupt. */
int grpc_reflection_init(void);
/* Frees the index (after the last answer). */
void grpc_reflection_free(void);
/* The packed ServerReflectionResponse to one packed ServerReflectionRequest, malloc'd into *out
 * (the caller frees it). 0; -1 if the bytes are not a ServerReflectionRequest, -2 if out of
 * memory (nothing is allocated then). Thread-safe once initialised. */
int grpc_reflection_answer(const uint8_t *request, size_t len, uint8_t **out, size_t *out_len);

#endif
