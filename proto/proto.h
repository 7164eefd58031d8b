/*
 * proto.h - generated protobuf-c types of traced's own .proto files, and the
 * adapter that makes protobuf-c allocate from a per-request arena.
 *
 * Thread-safety: reentrant.
 */
#ifndef TD_PROTO_H
#define TD_PROTO_H

#include "core/arena.h"

#include "google/rpc/status.pb-c.h"
#include "google/v1/profile.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "opentelemetry/proto/common/v1/common.pb-c.h"
#include "opentelemetry/proto/resource/v1/resource.pb-c.h"
#include "opentelemetry/proto/trace/v1/trace.pb-c.h"
#include "push/v1/push.pb-c.h"
#include "querier/v1/querier.pb-c.h"
#include "tempopb/tempo.pb-c.h"
#include "types/v1/types.pb-c.h"

#include <protobuf-c/protobuf-c.h>

/* Short names for the OTLP types used everywhere. */
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest td_otlp_request;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse td_otlp_response;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans td_otlp_resource_spans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans td_otlp_scope_spans;
typedef Opentelemetry__Proto__Trace__V1__Span td_otlp_span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event td_otlp_event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link td_otlp_link;
typedef Opentelemetry__Proto__Trace__V1__Status td_otlp_status;
typedef Opentelemetry__Proto__Common__V1__KeyValue td_otlp_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue td_otlp_any;
typedef Opentelemetry__Proto__Common__V1__ArrayValue td_otlp_array;
typedef Opentelemetry__Proto__Common__V1__KeyValueList td_otlp_kvlist;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope td_otlp_scope;
typedef Opentelemetry__Proto__Resource__V1__Resource td_otlp_resource;

/* Short names for the pprof types (google.v1, API-CONTRACT §7). */
typedef Google__V1__Profile td_pprof_profile;
typedef Google__V1__ValueType td_pprof_value_type;
typedef Google__V1__Sample td_pprof_sample;
typedef Google__V1__Label td_pprof_label;
typedef Google__V1__Mapping td_pprof_mapping;
typedef Google__V1__Location td_pprof_location;
typedef Google__V1__Line td_pprof_line;
typedef Google__V1__Function td_pprof_function;

/*
 * Fill *pa so that protobuf-c allocates from arena a (frees are no-ops). The arena
 * must outlive every message unpacked with it; never call *_free_unpacked on them.
 */
void td_proto_allocator_init(ProtobufCAllocator *pa, td_arena *a);

#endif
