/* libcurl multi handles without the wake-up socket pair that curl_multi_init() opens. */
#ifndef AIROUTER_CURL_NOWAKEUP_H
#define AIROUTER_CURL_NOWAKEUP_H
#include <curl/curl.h>

/* A multi handle like curl_multi_init()'s, minus its two wake-up descriptors (so a stream
 * holds only its client and backend sockets). curl_multi_wakeup() cannot be used on it;
 * curl_multi_poll() works as before. NULL on failure. */
CURLM *curl_nowakeup_multi_init(void);

#endif
