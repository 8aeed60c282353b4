/* airouter -V. */
#ifndef AIROUTER_VERSION_H
#define AIROUTER_VERSION_H
#include <stdio.h>

/* Prints airouter's version and each library's build-time and run-time versions. */
void version_print(FILE *out, const char *version);

#endif
