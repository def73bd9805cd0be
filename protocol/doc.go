// Package protocol is the hub<->member wire contract: NATS subjects and
// the messages sent on them. Both sides import it; nothing else defines a
// subject.
//
// # Subjects
//
// A member publishes only under atoll.m.<cluster>.> and receives only
// what is addressed to atoll.h.<cluster>.> or to its own reply inbox
// _INBOX.<cluster>.>; its NATS identity allows exactly that, so one member
// can never speak for another. Cluster names are DNS labels, so they are
// always a single NATS token.
//
// # Versions
//
// Every message carries the protocol Version of its sender. A change to a
// message or subject bumps Version and is described in the history below;
// the hub accepts messages from members one version behind.
//
//	1: heartbeats and their acks.
//	2: heartbeats carry the member's interval; desired workloads with epochs
//	   and their acks (replies on atoll.m.<cluster>.r.<id>); workload status
//	   reports; replica logs streamed hub -> member -> node; inside a region,
//	   node heartbeats (with each replica's state and limits) and bindings.
//	3: fencing: heartbeats carry the member's fence and lease term and may
//	   ask for a resync; desired workloads say whether they are exclusive
//	   and carry the term they were sent under; node acks carry the lease
//	   left, the exclusive workloads on hold and the drill's dark flag;
//	   bindings say whether they are exclusive. Drill commands
//	   (atoll.h.<cluster>.drill) take a member dark or cut it off for a
//	   while. A version 2 member keeps working but is never fenced.
//	4: registration (over the hub's HTTP API, with the join or member
//	   token) proves possession of the member's NATS key: the member asks
//	   POST /api/v1/clusters/register/challenge for a nonce bound to its
//	   token and name, and registers with the nonce and its signature of
//	   api.RegistrationProof. The hub refuses registrations without them,
//	   so a version 3 member keeps heartbeating but must be upgraded
//	   before it registers again (at its next start). NATS messages are
//	   unchanged.
//	5: replica truth. Node heartbeats carry each replica's last failure
//	   (reason, words, exit code), start and next start; status reports
//	   carry per workload the replicas' counts by state, at most
//	   MaxReplicaExamples example replicas (the most troubled first) and
//	   one problem per warning reason, which the hub turns into
//	   deduplicated Warning events. The hub asks a member for its replicas
//	   (atoll.h.<cluster>.replicas, bounded by MaxReplicasListed) and its
//	   nodes (atoll.h.<cluster>.nodes). All new fields are optional: a
//	   version 4 member's reports fold as before (counts only) and the hub
//	   names it as not answering replicas and nodes requests.
//	   Log requests may carry tail, since, timestamps and previous (the
//	   run before the replica's last restart); nodes keep each line's time
//	   and where each run began. A log stream's end may carry
//	   LogEndCodeHeader (not-found, no-previous). A version 4 member
//	   ignores the new fields, so the hub sends them only from 5 on and
//	   says so for an older member.
//	6: services. Members publish their ready replicas' addresses
//	   (atoll.m.<cluster>.endpoints, an EndpointReport: the whole set, on
//	   every change and every few seconds); the hub sends every member the
//	   endpoint table its gateway routes with (atoll.h.<cluster>.endpoints,
//	   an EndpointTable with an epoch and a digest, or a Check asking for
//	   the digest held), acked with an EndpointAck. Inside a region, node
//	   heartbeats may carry the node's Host and each replica's Port. A
//	   version 5 member publishes no endpoints and ignores the tables: its
//	   replicas serve no service. Still 6, same messages: a member's table
//	   holds only the services its gateway serves (Service spec.gateways),
//	   with its own digest, and an epoch of its own that only grows.
//	   Also new in 6, additive (a member that does not answer them is
//	   sent nothing): configs and secrets on atoll.h.<cluster>.data
//	   (DataRequest: put, delete or ask; DataHeld: what the member holds),
//	   Binding.Data (the values a node's replicas use, filled in the
//	   member's answer to the node, never stored), WorkloadStatus.Data
//	   (the versions the updated replicas run with) and
//	   WorkloadStatus.UpdatedReady/UpdatedRestarts (the updated replicas'
//	   readiness and restarts, for progressive rollouts' gates).
//	   Later in 6, additive: a member keeps several versions of an item
//	   (a progressive rollout's old and new values, each template naming
//	   the versions it runs with in api.AnnotationData) and answers
//	   DataHeld.Versions; the hub removes one version with
//	   DataRequest.DeleteVersion, which it sends only to members that
//	   answer Versions (an earlier member holds one version per item and
//	   is served as before).
//	   Also additive in 6 (a member that does not answer is sent
//	   nothing, and its status simply lacks the new field): warm standby.
//	   The hub sends each member the images it keeps warm
//	   (atoll.h.<cluster>.standby, a StandbyList with an epoch and a
//	   digest, or a Check asking for the digest held; a StandbyAck
//	   answers); inside a region the member names each node the images it
//	   should pull ahead (NodeBindings.Prepull), node heartbeats carry
//	   their state (NodeHeartbeat.Images), and status reports carry each
//	   workload's image presence (StatusReport.Images). Desired
//	   workloads' oci images arrive pinned to the digest the hub resolved
//	   once for the revision (repository:tag@sha256:...).
//	   Also additive in 6: BindingData.RegistryAuth (the template's
//	   imagePullSecret, for the node's pulls of that replica's image); a
//	   node that ignores it pulls with its own credentials only.
//	7: traffic. An endpoint (ReplicaAddress, Endpoint) carries its
//	   replica's workload generation, so a gateway knows which revision
//	   answered; members publish their gateway's counts per service,
//	   serving cluster and generation (atoll.m.<cluster>.traffic, a
//	   TrafficReport: requests, errors, a latency histogram, each report
//	   the interval since the previous one). A version 6 member reports
//	   no traffic: a traffic gate on its clusters waits.
//	   Also additive in 7: the hub sends many desired workloads in one
//	   request (atoll.h.<cluster>.desired-batch, a DesiredBatch of at most
//	   MaxDesiredBatch, answered by a DesiredBatchAck with one DesiredAck
//	   each). A member that does not listen there (the request finds no
//	   responder) is sent one workload per request, as before.
//	   Also additive in 7: status deltas. A hub that folds them says so
//	   in its heartbeat acks (HeartbeatAck.StatusDeltas); while the
//	   leader's acks say it, the member sends what changed in its status
//	   (atoll.m.<cluster>.status-delta, a StatusDelta numbered within its
//	   session; its whole status as a run of deltas on a hub's request on
//	   atoll.h.<cluster>.status-full and now and then) instead of its whole
//	   StatusReport on every change. Otherwise it reports as before.
package protocol
