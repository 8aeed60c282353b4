/* OpenAI-style error bodies: {"error":{"message":..,"type":..,"param":..,"code":..}}. */
#ifndef AIROUTER_OAI_ERROR_H
#define AIROUTER_OAI_ERROR_H
#include "common/buf.h"

/* param and code may be NULL (sent as JSON null). Returns 0, -1 on allocation failure. */
int oaierr_format(buf_t *out, const char *message, const char *type, const char *param,
                  const char *code);

#endif
