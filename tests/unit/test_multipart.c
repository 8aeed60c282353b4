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

/* The value of field name in body (or "(absent)"), as a string. */
static const char *field(const char *body, const char *boundary, const char *name, char *out, size_t n)
{
    size_t off, len;
    if (!mp_find_field(body, strlen(body), boundary, name, &off, &len))
        return "(absent)";
    snprintf(out, n, "%.*s", (int)len, body + off);
    return out;
}

TEST(mp_find_field_values)
{
    char v[128];
    const char *body = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                       "Content-Type: audio/wav\r\n\r\nRIFF\r\n--XyZ-not-quite\r\nmore\r\n"
                       "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
                       "--XyZ\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\n\r\n"
                       "--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nline one\r\nline two\r\n--XyZ--\r\n";
    CHECK_STR(field(body, "XyZ", "model", v, sizeof v), "whisper-1");
    CHECK_STR(field(body, "XyZ", "language", v, sizeof v), ""); /* present and empty */
    CHECK_STR(field(body, "XyZ", "prompt", v, sizeof v), "line one\r\nline two");
    /* a file part is not a field, even with the name asked for */
    CHECK_STR(field(body, "XyZ", "file", v, sizeof v), "(absent)");
    CHECK_STR(field(body, "XyZ", "temperature", v, sizeof v), "(absent)");
    /* the value's offset points into the body, so the caller can splice a new one in */
    size_t off, len;
    CHECK(mp_find_field(body, strlen(body), "XyZ", "model", &off, &len) && memcmp(body + off, "whisper-1", 9) == 0 &&
          len == 9);
    /* another name that ends like the one asked for is not it */
    const char *suffix = "--B\r\nContent-Disposition: form-data; xname=\"model\"\r\n\r\nno\r\n"
                         "--B\r\nContent-Disposition: form-data;name=\"model\"\r\n\r\nyes\r\n--B--\r\n";
    CHECK_STR(field(suffix, "B", "model", v, sizeof v), "yes");
}

TEST(mp_find_field_truncated_bodies)
{
    char v[64] = "";
    /* no blank line after the headers, no delimiter after the value, the closing delimiter first */
    const char *bad[] = {
        "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n",
        "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1",
        "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--",
        "--B--\r\n--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--B--",
        "--B",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(strcmp(field(bad[i], "B", "model", v, sizeof v), "(absent)") == 0, "body %zu: %s", i, v);
    /* every prefix of a good body: found only once the delimiter after the value is in */
    const char *good = "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--B--\r\n";
    size_t need = strstr(good, "m\r\n--B--") - good + 6;
    for (size_t n = 0; n <= strlen(good); n++) {
        size_t off, len;
        bool found = mp_find_field(good, n, "B", "model", &off, &len);
        CHECK_MSG(found == (n >= need), "prefix of %zu bytes: %s", n, found ? "found" : "absent");
        if (found)
            CHECK(off + len <= n && len == 1);
    }
}

TEST(mp_boundary_limits)
{
    char b[80], small[4];
    char ct[200];
    /* RFC 2046: 1 to 70 characters */
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%070d", 0);
    CHECK(mp_boundary(ct, b, sizeof b) && strlen(b) == 70);
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%071d", 0);
    CHECK(!mp_boundary(ct, b, sizeof b));
    CHECK(!mp_boundary("multipart/form-data; boundary=abcd", small, sizeof small)); /* does not fit out */
    CHECK(mp_boundary("multipart/form-data; boundary=abc", small, sizeof small) && strcmp(small, "abc") == 0);
    CHECK(!mp_boundary("multipart/form-data", b, sizeof b));
    CHECK(!mp_boundary(NULL, b, sizeof b));
    CHECK(mp_boundary("Multipart/Form-Data;boundary=\"q;r\"", b, sizeof b) && strcmp(b, "q;r") == 0);
}
