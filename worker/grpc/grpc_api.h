/* The ai_router.AIRouter gRPC API for clients (grpc_listen in the config). */
#ifndef AIROUTER_GRPC_API_H
#define AIROUTER_GRPC_API_H
#include "common/config.h"

/* Starts serving when grpc_listen is set (initialises gRPC: call after fork). */
int grpc_api_start(const cfg_t *cfg);
/* Stops taking new calls (graceful stop, first step). */
void grpc_api_quiesce(void);
/* Waits up to drain_s seconds for calls in flight, cancels the rest, shuts down. */
void grpc_api_stop(int drain_s);
unsigned grpc_api_in_flight(void);

#endif
