/* gRPC server reflection answers. The build compiles the served .proto files into one
 * google.protobuf.FileDescriptorSet and embeds its bytes (build/gen/descriptor_set.c); this module
 * reads the few descriptor fields that name things (files, imports, packages, messages, fields,
 * oneofs, enums and their values, services, methods) straight from the protobuf wire format, so
 * that it needs no generated code for descriptor.proto, and answers from that index. A
 * FileDescriptorProto goes to the client as the very bytes the compiler wrote. */
#include "worker/grpc/grpc_reflection.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "reflection.pb-c.h"

/* build/gen/descriptor_set.c */
extern const unsigned char reflection_descriptor_set[];
extern const size_t reflection_descriptor_set_len;

/* gRPC status codes carried in ErrorResponse.error_code */
#define CODE_INVALID_ARGUMENT 3
#define CODE_NOT_FOUND 5

typedef enum { SYM_MESSAGE, SYM_SERVICE, SYM_OTHER } sym_kind_t;

typedef struct {
    char *name;             /* owned */
    const uint8_t *data;    /* the serialized FileDescriptorProto, inside the embedded set */
    size_t len;
    char **deps;            /* owned: the names of the files it imports */
    size_t ndeps;
} refl_file_t;

typedef struct {
    char *name; /* owned, fully qualified without a leading dot */
    size_t file;
    sym_kind_t kind;
} refl_symbol_t;

static refl_file_t *files;
static size_t nfiles;
static refl_symbol_t *symbols;
static size_t nsymbols;

/* ---- protobuf wire format, the little of it that descriptors use ---- */

typedef struct {
    const uint8_t *p, *end;
} pb_reader_t;

typedef struct {
    uint32_t number;
    unsigned wire;          /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    const uint8_t *bytes;   /* wire 2: the field's bytes */
    size_t len;
} pb_field_t;

static bool pb_varint(pb_reader_t *r, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* The next field of a message: 1, 0 at its end, -1 if the bytes are malformed. */
static int pb_next(pb_reader_t *r, pb_field_t *f)
{
    if (r->p >= r->end)
        return 0;
    uint64_t key, n;
    if (!pb_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
        return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (unsigned)(key & 7);
    f->bytes = NULL;
    f->len = 0;
    size_t left;
    switch (f->wire) {
    case 0: return pb_varint(r, &n) ? 1 : -1;
    case 1: n = 8; break;
    case 5: n = 4; break;
    case 2:
        if (!pb_varint(r, &n))
            return -1;
        break;
    default: return -1; /* groups: never in descriptors */
    }
    left = (size_t)(r->end - r->p);
    if (n > left)
        return -1;
    if (f->wire == 2) {
        f->bytes = r->p;
        f->len = (size_t)n;
    }
    r->p += n;
    return 1;
}

/* The string field `number` of a message (the last one, as protobuf reads it), malloc'd; "" if
 * absent; NULL on malformed bytes or no memory. */
static char *pb_string(const uint8_t *msg, size_t len, uint32_t number)
{
    pb_reader_t r = {msg, msg + len};
    pb_field_t f;
    const uint8_t *s = (const uint8_t *)"";
    size_t slen = 0;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == number && f.wire == 2) {
            s = f.bytes;
            slen = f.len;
        }
    return rc < 0 ? NULL : strndup((const char *)s, slen);
}

/* ---- the index ---- */

/* scope.name, malloc'd (name alone when scope is empty). */
static char *qualify(const char *scope, const char *name)
{
    char *out;
    if (asprintf(&out, "%s%s%s", scope, scope[0] ? "." : "", name) < 0)
        return NULL;
    return out;
}

static int add_symbol(char *name, size_t file, sym_kind_t kind)
{
    if (!name)
        return -1;
    refl_symbol_t *grown = realloc(symbols, (nsymbols + 1) * sizeof *symbols);
    if (!grown) {
        free(name);
        return -1;
    }
    symbols = grown;
    symbols[nsymbols++] = (refl_symbol_t){name, file, kind};
    return 0;
}

/* Adds the symbol named by field 1 of a descriptor (a field, method, oneof, enum value...) in scope. */
static int add_named(const pb_field_t *f, const char *scope, size_t file, sym_kind_t kind)
{
    char *name = pb_string(f->bytes, f->len, 1);
    if (!name)
        return -1;
    char *full = qualify(scope, name);
    free(name);
    return add_symbol(full, file, kind);
}

/* An EnumDescriptorProto in scope: the enum, and its values, which C++ scoping puts beside it. */
static int index_enum(const pb_field_t *e, const char *scope, size_t file)
{
    if (add_named(e, scope, file, SYM_OTHER) < 0)
        return -1;
    pb_reader_t r = {e->bytes, e->bytes + e->len};
    pb_field_t f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == 2 && f.wire == 2 && add_named(&f, scope, file, SYM_OTHER) < 0)
            return -1;
    return rc;
}

/* A DescriptorProto in scope: the message, its fields, oneofs, extensions, nested messages and enums. */
static int index_message(const pb_field_t *m, const char *scope, size_t file)
{
    char *name = pb_string(m->bytes, m->len, 1);
    char *full = name ? qualify(scope, name) : NULL;
    free(name);
    if (!full || add_symbol(strdup(full), file, SYM_MESSAGE) < 0) {
        free(full);
        return -1;
    }
    pb_reader_t r = {m->bytes, m->bytes + m->len};
    pb_field_t f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.wire != 2)
            continue;
        int ok = 0;
        if (f.number == 2 || f.number == 6 || f.number == 8) /* field, extension, oneof_decl */
            ok = add_named(&f, full, file, SYM_OTHER);
        else if (f.number == 3) /* nested_type */
            ok = index_message(&f, full, file);
        else if (f.number == 4) /* enum_type */
            ok = index_enum(&f, full, file);
        if (ok < 0) {
            rc = -1;
            break;
        }
    }
    free(full);
    return rc;
}

/* A ServiceDescriptorProto in scope: the service and its methods. */
static int index_service(const pb_field_t *s, const char *scope, size_t file)
{
    char *name = pb_string(s->bytes, s->len, 1);
    char *full = name ? qualify(scope, name) : NULL;
    free(name);
    if (!full || add_symbol(strdup(full), file, SYM_SERVICE) < 0) {
        free(full);
        return -1;
    }
    pb_reader_t r = {s->bytes, s->bytes + s->len};
    pb_field_t f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == 2 && f.wire == 2 && add_named(&f, full, file, SYM_OTHER) < 0) { /* method */
            rc = -1;
            break;
        }
    free(full);
    return rc;
}

/* A FileDescriptorProto: its name, imports, and every symbol it declares. */
static int index_file(const uint8_t *data, size_t len)
{
    refl_file_t *grown = realloc(files, (nfiles + 1) * sizeof *files);
    if (!grown)
        return -1;
    files = grown;
    size_t fi = nfiles++;
    files[fi] = (refl_file_t){.data = data, .len = len, .name = pb_string(data, len, 1)};
    char *package = pb_string(data, len, 2);
    int rc = files[fi].name && package ? 1 : -1;
    pb_reader_t r = {data, data + len};
    pb_field_t f;
    while (rc > 0 && (rc = pb_next(&r, &f)) > 0) {
        if (f.wire != 2)
            continue;
        int ok = 0;
        if (f.number == 3) { /* dependency */
            char **deps = realloc(files[fi].deps, (files[fi].ndeps + 1) * sizeof *deps);
            if (deps)
                files[fi].deps = deps;
            char *dep = deps ? strndup((const char *)f.bytes, f.len) : NULL;
            if (dep)
                deps[files[fi].ndeps++] = dep;
            else
                ok = -1;
        } else if (f.number == 4) { /* message_type */
            ok = index_message(&f, package, fi);
        } else if (f.number == 5) { /* enum_type */
            ok = index_enum(&f, package, fi);
        } else if (f.number == 6) { /* service */
            ok = index_service(&f, package, fi);
        } else if (f.number == 7) { /* extension */
            ok = add_named(&f, package, fi, SYM_OTHER);
        }
        if (ok < 0)
            rc = -1;
    }
    free(package);
    return rc;
}

void grpc_reflection_free(void)
{
    for (size_t i = 0; i < nfiles; i++) {
        free(files[i].name);
        for (size_t d = 0; d < files[i].ndeps; d++)
            free(files[i].deps[d]);
        free(files[i].deps);
    }
    for (size_t i = 0; i < nsymbols; i++)
        free(symbols[i].name);
    free(files);
    free(symbols);
    files = NULL;
    symbols = NULL;
    nfiles = nsymbols = 0;
}

int grpc_reflection_init(void)
{
    grpc_reflection_free();
    pb_reader_t r = {reflection_descriptor_set, reflection_descriptor_set + reflection_descriptor_set_len};
    pb_field_t f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == 1 && f.wire == 2 && index_file(f.bytes, f.len) < 0) { /* FileDescriptorSet.file */
            rc = -1;
            break;
        }
    if (rc < 0) {
        log_error("grpc reflection: the embedded descriptors cannot be read");
        grpc_reflection_free();
        return -1;
    }
    return 0;
}

/* ---- answers ---- */

static const refl_file_t *find_file(const char *name, size_t *index)
{
    for (size_t i = 0; i < nfiles; i++)
        if (strcmp(files[i].name, name) == 0) {
            *index = i;
            return &files[i];
        }
    return NULL;
}

static const refl_symbol_t *find_symbol(const char *name)
{
    for (size_t i = 0; i < nsymbols; i++)
        if (strcmp(symbols[i].name, name) == 0)
            return &symbols[i];
    return NULL;
}

/* Appends file `fi` and, after it, the files it imports, each once (taken marks those in out). */
static void collect_files(size_t fi, bool *taken, ProtobufCBinaryData *out, size_t *n)
{
    if (taken[fi])
        return;
    taken[fi] = true;
    out[(*n)++] = (ProtobufCBinaryData){.len = files[fi].len, .data = (uint8_t *)files[fi].data};
    for (size_t d = 0; d < files[fi].ndeps; d++) {
        size_t di;
        if (find_file(files[fi].deps[d], &di))
            collect_files(di, taken, out, n);
    }
}

typedef struct {
    Grpc__Reflection__V1__ServerReflectionResponse resp;
    Grpc__Reflection__V1__FileDescriptorResponse fdr;
    Grpc__Reflection__V1__ListServiceResponse lsr;
    Grpc__Reflection__V1__ExtensionNumberResponse enr;
    Grpc__Reflection__V1__ErrorResponse err;
    char *message;                      /* owned: the error's text */
    ProtobufCBinaryData *protos;        /* owned array; the bytes stay in the embedded set */
    Grpc__Reflection__V1__ServiceResponse *services;  /* owned */
    Grpc__Reflection__V1__ServiceResponse **service_ptrs; /* owned */
} answer_t;

static int answer_error(answer_t *a, int code, const char *fmt, const char *what)
{
    if (asprintf(&a->message, fmt, what) < 0)
        return -1;
    a->err.error_code = code;
    a->err.error_message = a->message;
    a->resp.message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    a->resp.error_response = &a->err;
    return 0;
}

static int answer_files(answer_t *a, size_t fi)
{
    bool *taken = calloc(nfiles, sizeof *taken);
    a->protos = calloc(nfiles, sizeof *a->protos);
    if (!taken || !a->protos) {
        free(taken);
        return -1;
    }
    size_t n = 0;
    collect_files(fi, taken, a->protos, &n);
    free(taken);
    a->fdr.n_file_descriptor_proto = n;
    a->fdr.file_descriptor_proto = a->protos;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    a->resp.file_descriptor_response = &a->fdr;
    return 0;
}

static int answer_services(answer_t *a)
{
    size_t n = 0;
    for (size_t i = 0; i < nsymbols; i++)
        n += symbols[i].kind == SYM_SERVICE;
    a->services = calloc(n ? n : 1, sizeof *a->services);
    a->service_ptrs = calloc(n ? n : 1, sizeof *a->service_ptrs);
    if (!a->services || !a->service_ptrs)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < nsymbols; i++)
        if (symbols[i].kind == SYM_SERVICE) {
            a->services[k] = (Grpc__Reflection__V1__ServiceResponse)GRPC__REFLECTION__V1__SERVICE_RESPONSE__INIT;
            a->services[k].name = symbols[i].name;
            a->service_ptrs[k] = &a->services[k];
            k++;
        }
    a->lsr.n_service = n;
    a->lsr.service = a->service_ptrs;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    a->resp.list_services_response = &a->lsr;
    return 0;
}

/* The served types declare no extensions: a known message type has none, anything else is unknown. */
static int answer_extension_numbers(answer_t *a, const char *type)
{
    const refl_symbol_t *s = find_symbol(type);
    if (!s || s->kind != SYM_MESSAGE)
        return answer_error(a, CODE_NOT_FOUND, "No message type named '%.200s'.", type);
    a->enr.base_type_name = s->name;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    a->resp.all_extension_numbers_response = &a->enr;
    return 0;
}

/* Fills a->resp for req. 0, or -1 when out of memory. */
static int answer_fill(answer_t *a, const Grpc__Reflection__V1__ServerReflectionRequest *req)
{
    size_t fi;
    const refl_symbol_t *s;
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        if (find_file(req->file_by_filename, &fi))
            return answer_files(a, fi);
        return answer_error(a, CODE_NOT_FOUND, "No file named '%.200s'.", req->file_by_filename);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        if ((s = find_symbol(req->file_containing_symbol)))
            return answer_files(a, s->file);
        return answer_error(a, CODE_NOT_FOUND, "No symbol named '%.200s'.", req->file_containing_symbol);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        const char *type = req->file_containing_extension && req->file_containing_extension->containing_type
                               ? req->file_containing_extension->containing_type
                               : "";
        return answer_error(a, CODE_NOT_FOUND, "No extension of '%.200s' is declared.", type);
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        return answer_extension_numbers(a, req->all_extension_numbers_of_type);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        return answer_services(a);
    default:
        return answer_error(a, CODE_INVALID_ARGUMENT, "%s",
                            "The request asks for none of file_by_filename, file_containing_symbol, "
                            "file_containing_extension, all_extension_numbers_of_type, list_services.");
    }
}

int grpc_reflection_answer(const uint8_t *request, size_t len, uint8_t **out, size_t *out_len)
{
    Grpc__Reflection__V1__ServerReflectionRequest *req =
        grpc__reflection__v1__server_reflection_request__unpack(NULL, len, request);
    if (!req)
        return -1;
    answer_t a = {
        .resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT,
        .fdr = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT,
        .lsr = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT,
        .enr = GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT,
        .err = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT,
    };
    a.resp.valid_host = req->host;
    a.resp.original_request = req;
    int rc = answer_fill(&a, req);
    if (rc == 0) {
        *out_len = grpc__reflection__v1__server_reflection_response__get_packed_size(&a.resp);
        *out = malloc(*out_len ? *out_len : 1);
        if (*out)
            grpc__reflection__v1__server_reflection_response__pack(&a.resp, *out);
        else
            rc = -1;
    }
    if (rc < 0) {
        *out = NULL;
        *out_len = 0;
    }
    free(a.message);
    free(a.protos);
    free(a.services);
    free(a.service_ptrs);
    grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
    return rc == 0 ? 0 : -2;
}
