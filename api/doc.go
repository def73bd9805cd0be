// Package api is Atoll's public contract: the resource types the hub serves
// under /api/v1, their validation, label selectors, merge patches, manifest
// decoding and the problem+json error body.
//
// Resources follow Kubernetes conventions so that ops teams feel at home:
// every object has apiVersion, kind, metadata (name, uid, labels,
// annotations, resourceVersion, generation, creationTimestamp,
// deletionTimestamp, finalizers), a spec written by users and a status written
// by the hub. The hub assigns uid, resourceVersion (growing with every write, the order watches deliver changes in),
// generation (bumped only when spec changes) and the timestamps; clients never
// set them, except resourceVersion on an update, where it is the precondition.
//
// Validation lives here, next to the types, so the hub, the CLI and any Go
// client agree on what a valid object is. Every problem carries the field path
// it is about (for example "spec.template.resources.cpu").
package api
