/*
 * connect.h - Connect unary RPC over HTTP/1.1 (API-CONTRACT §6.1, §5.0) and a generic
 * protojson codec over protobuf-c descriptors.
 *
 * A service is a table of td_connect_method rows (path, request and response
 * descriptors, handler). The HTTP server collects the request body and calls
 * td_connect_serve, which does everything Connect asks of a unary call: POST only
 * (405 + Allow: POST otherwise), Content-Type application/proto or application/json
 * (415 otherwise), gzip request bodies, decoding into the request message, the
 * handler, encoding the reply with the request's codec, and errors as Connect JSON
 * `{"code":"invalid_argument","message":"..."}` with the mapped HTTP status.
 *
 *   static td_status h_types(void *ud, td_connect_call *call, const ProtobufCMessage *in,
 *                            ProtobufCMessage **out, td_err *err);
 *   static const td_connect_method methods[] = {
 *       {"/querier.v1.QuerierService/ProfileTypes",
 * &querier__v1__profile_types_request__descriptor,
 *        &querier__v1__profile_types_response__descriptor, h_types},
 *   };
 *
 * protojson (canonical proto3 JSON, what Connect's JSON codec speaks): field names
 * are the lowerCamel of the proto name (profile_typeID -> profileTypeID, ID stays
 * ID); 64-bit integers are written as strings and read from strings or numbers;
 * enums are written by name and read by name or number, unknown names are ignored
 * (the field keeps its default); bytes are standard base64 (read: standard or
 * URL-safe, padding optional); zero/empty fields are omitted unless the field
 * tracks presence (proto3 `optional`, oneof), which is written when set; unknown
 * JSON fields and `null` values are ignored; the proto field name is accepted as
 * well as the JSON name. Maps and well-known types are not supported (no traced
 * message uses them).
 *
 * Memory: decoded messages and their strings live in the caller's arena (never
 * call protobuf_c_message_free_unpacked on them). Output is appended to td_buf.
 * Thread-safety: reentrant.
 */
#ifndef TD_API_CONNECT_H
#define TD_API_CONNECT_H

#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

/* Connect error codes: enum name, wire name, HTTP status (connect protocol spec). */
#define TD_CONNECT_CODE_MAP(X)                                                                     \
    X(OK, "ok", 200)                                                                               \
    X(CANCELED, "canceled", 499)                                                                   \
    X(UNKNOWN, "unknown", 500)                                                                     \
    X(INVALID_ARGUMENT, "invalid_argument", 400)                                                   \
    X(DEADLINE_EXCEEDED, "deadline_exceeded", 504)                                                 \
    X(NOT_FOUND, "not_found", 404)                                                                 \
    X(ALREADY_EXISTS, "already_exists", 409)                                                       \
    X(PERMISSION_DENIED, "permission_denied", 403)                                                 \
    X(RESOURCE_EXHAUSTED, "resource_exhausted", 429)                                               \
    X(FAILED_PRECONDITION, "failed_precondition", 400)                                             \
    X(ABORTED, "aborted", 409)                                                                     \
    X(OUT_OF_RANGE, "out_of_range", 400)                                                           \
    X(UNIMPLEMENTED, "unimplemented", 501)                                                         \
    X(INTERNAL, "internal", 500)                                                                   \
    X(UNAVAILABLE, "unavailable", 503)                                                             \
    X(DATA_LOSS, "data_loss", 500)                                                                 \
    X(UNAUTHENTICATED, "unauthenticated", 401)

typedef enum td_connect_code {
#define TD__CONNECT_ENUM(name, wire, http) TD_CONNECT_##name,
    TD_CONNECT_CODE_MAP(TD__CONNECT_ENUM)
#undef TD__CONNECT_ENUM
} td_connect_code;

/* Wire name ("invalid_argument") and HTTP status of a code. */
const char *td_connect_code_name(td_connect_code c);
int td_connect_code_http(td_connect_code c);
/*
 * The Connect code for a td_status: INVALID -> invalid_argument, UNAUTHENTICATED ->
 * unauthenticated, NOT_FOUND -> not_found, METHOD/UNSUPPORTED -> unimplemented,
 * TOO_LARGE/LIMITED -> resource_exhausted, OVERLOADED/NOMEM -> unavailable,
 * CORRUPT -> data_loss, IO/INTERNAL -> internal.
 */
td_connect_code td_connect_code_of(td_status s);

/* Append a Connect error body {"code":..,"message":..} (message omitted when empty). */
void td_connect_error_json(td_buf *out, td_connect_code code, const char *msg);

/* ---- protojson ---- */

/*
 * Append the protojson form of m to out. Errors: TD_INVALID for a message type
 * this codec does not support (maps), TD_INTERNAL for nesting deeper than 64.
 */
td_status td_protojson_encode(const ProtobufCMessage *m, td_buf *out, td_err *err);

/*
 * Decode the JSON object json[0..n) as a message of type d, allocated with its
 * strings, arrays and sub-messages in arena a. Errors: TD_INVALID (not JSON, not an
 * object, a value of the wrong type for its field, bad base64, an out-of-range
 * number; the message names the field), TD_NOMEM (arena limit).
 */
td_status td_protojson_decode(const ProtobufCMessageDescriptor *d, const char *json, size_t n,
                              td_arena *a, ProtobufCMessage **out, td_err *err);

/* The JSON name of a field: lowerCamel of its proto name, written into buf (cap bytes). */
void td_protojson_name(const char *proto_name, char *buf, size_t cap);

/* ---- unary calls ---- */

typedef enum td_connect_codec { TD_CONNECT_PROTO, TD_CONNECT_JSON } td_connect_codec;

/* One request as the HTTP layer saw it; strings may be NULL when absent. */
typedef struct td_connect_req {
    const char *method;           /* "POST" */
    const char *content_type;     /* Content-Type */
    const char *content_encoding; /* Content-Encoding */
    const char *accept;           /* Accept (LabelNames reads allow-utf8-labelnames) */
    const char *org_id;           /* X-Scope-OrgID */
    const void *body;
    size_t len;
    size_t max_body; /* largest body after gunzip (0 = 64 MiB) */
} td_connect_req;

/* What goes back: status, content type (static string) and body. */
typedef struct td_connect_reply {
    int status;
    const char *ctype;
    td_buf body;          /* initialised by the caller */
    bool allow_post;      /* send `Allow: POST` (405) */
    td_connect_code code; /* TD_CONNECT_OK or the error sent (metrics, logs) */
} td_connect_reply;

/* What a handler sees of its call. */
typedef struct td_connect_call {
    const td_connect_req *req;
    td_connect_codec codec;
    td_arena *arena; /* the request's arena: allocate the reply in it */
    /*
     * Set on failure to send another code than td_connect_code_of(status), e.g.
     * UNIMPLEMENTED for a known but unsupported request shape.
     */
    td_connect_code code;
} td_connect_call;

/*
 * A method handler: in is the decoded request (never NULL). On TD_OK *out is the
 * reply (NULL = the empty reply message); on failure err says why.
 */
typedef td_status (*td_connect_fn)(void *ud, td_connect_call *call, const ProtobufCMessage *in,
                                   ProtobufCMessage **out, td_err *err);

typedef struct td_connect_method {
    const char *path; /* "/package.Service/Method" */
    const ProtobufCMessageDescriptor *in;
    const ProtobufCMessageDescriptor *out;
    td_connect_fn fn; /* NULL: answers unimplemented */
} td_connect_method;

/*
 * The method of tab whose path is a suffix of url (Connect allows a routing prefix
 * before /package.Service/Method), or NULL.
 */
const td_connect_method *td_connect_find(const td_connect_method *tab, size_t n, const char *url);

/*
 * Serve one unary call of m (NULL = an unknown method of a known service: answers
 * unimplemented). Fills rp; arena a holds everything the call allocates.
 */
void td_connect_serve(const td_connect_method *m, void *ud, const td_connect_req *rq, td_arena *a,
                      td_connect_reply *rp);

#endif
