// Package image pulls OCI images onto a node and keeps them in a
// content-addressed cache: the part of a node agent that turns an image
// reference into a root filesystem a container runtime can start from.
// It owns the cache directory and the talk with registries; it must not
// start containers (member/runtime does) or decide which images a node
// needs (its callers do).
//
// # Pulling
//
// Store.Pull resolves a reference to the digest of the image manifest for
// this node's platform (an index is narrowed to linux/<arch>), fetches
// the config and every layer it does not hold yet, verifies each layer
// against its digest, and unpacks the layers in order into one root
// filesystem per image digest. Concurrent pulls of one reference share
// one fetch. A reference by digest that is already unpacked needs no
// registry at all: that is the warm start.
//
// Where a tag becomes a digest: at the hub, once per workload template
// revision (Resolver, the same transport rules as a node's), which
// delivers the template pinned (repository:tag@sha256:...), so every
// cluster runs the same bits and a tag moved later changes nothing a
// revision runs. A node still pins what it pulled for a generation (the
// runtime keeps the digest it got), which matters only for a template a
// hub could not pin.
//
// # Warm standby
//
// Prepull hands the store its warm list: images pinned to digests that
// the node should hold before any replica needs them, because a workload
// may fail over to its cluster. Those absent are pulled in the
// background, a bounded number at a time, failures retried with backoff;
// Warm reports each one's state; GC keeps them whatever their age or the
// cache's size (the member bounds the list).
//
// # Transport and credentials
//
// Registries are reached over HTTPS with the system's roots plus, when
// configured, a CA bundle. Plain HTTP is allowed only for registries
// listed in Config.Insecure: the transport refuses any other http://
// request (the registry library would otherwise fall back to HTTP for
// loopback and private addresses). Credentials come from a file on the
// node in the docker config.json format ({"auths": {"host:port":
// {"auth": base64(user:password)}}} or username and password); the file
// is read at each pull, and its content is never logged nor put in an
// error.
//
// # Cache
//
// Dir/blobs/sha256/<hex> holds compressed layers, Dir/images/<hex> the
// unpacked root filesystem of an image (the hex of its manifest digest)
// and Dir/images/<hex>.json its config and size. Every file arrives
// under a temporary name and is renamed into place only once complete
// and verified: a failed or corrupt download leaves nothing in the
// cache (temporary files of a crashed agent are removed by Open). Layers
// are unpacked with whiteouts honoured (.wh.<name> deletes a lower
// file, .wh..wh..opq empties a lower directory) and never write outside
// the root (paths with .., writes through symlinks and links out are
// refused). Images are shared read-only by every container of the node
// (the runtime lays an overlay on top per replica). GC removes images
// and blobs not used for MaxAge, then the least recently used until the
// cache fits MaxBytes; images in use (Acquire/Release) and those of the
// warm list are kept.
package image
