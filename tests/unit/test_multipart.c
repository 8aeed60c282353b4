#include "worker/oai/multipart.h"
#include "unit.h"

TEST(mp_boundary_parameters)
{
    char b[80];
    CHECK(mp_boundary("multipart/form-data; boundary=abc", b, sizeof b) && strcmp(b, "abc") == 0);
    CHECK(mp_boundary("multipart/form-data; charset=x; BOUNDARY=\"a b\"", b, sizeof b) && strcmp(b, "a b") == 0);
    /* "boundary=" inside another parameter is not the boundary, and makes it ambiguous */
    CHECK(!mp_boundary("multipart/form-data; xboundary=AAA", b, sizeof b));
    CHECK(!mp_boundary("multipart/form-data; xboundary=AAA; boundary=BBB", b, sizeof b));
    CHECK(!mp_boundary("multipart/form-data; boundary=BBB; note=\"boundary=AAA\"", b, sizeof b));
    /* two boundaries: a backend might pick the other */
    CHECK(!mp_boundary("multipart/form-data; boundary=AAA; boundary=BBB", b, sizeof b));
    CHECK(!mp_boundary("multipart/form-data; boundary=", b, sizeof b));
    CHECK(!mp_boundary("application/json; boundary=abc", b, sizeof b));
}

TEST(mp_count_fields_lenient_spellings)
{
    const char *one = "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
                      "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--B--\r\n";
    CHECK_INT(mp_count_fields(one, strlen(one), "B", "model"), 1);
    const char *variants[] = {
        "--B\r\nContent-Disposition: form-data; name=model\r\n\r\nsecret\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; NAME = \"MODEL\"\r\n\r\nsecret\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name*=utf-8''model\r\n\r\nsecret\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=\"model\"; filename=\"m.txt\"\r\n\r\nsecret\r\n--B--\r\n",
        "--B\nContent-Disposition: form-data; name=\"model\"\n\nsecret\n--B--\n",
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        CHECK_MSG(mp_count_fields(variants[i], strlen(variants[i]), "B", "model") == 1, "variant %zu", i);
    const char *not_model = "--B\r\nContent-Disposition: form-data; name=\"model_extra\"; filename=\"model\"\r\n\r\nx\r\n--B--\r\n";
    CHECK_INT(mp_count_fields(not_model, strlen(not_model), "B", "model"), 0);
    const char *two = "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nallowed\r\n"
                      "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsecret\r\n--B--\r\n";
    CHECK_INT(mp_count_fields(two, strlen(two), "B", "model"), 2);
}
