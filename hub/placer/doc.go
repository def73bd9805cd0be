// Package placer is the hub's placement controller and status folder.
//
// The Placer runs on the leader hub, a pass at a time (Start, Stop,
// RunOnce). A pass gathers its inputs (the workloads, read incrementally
// from the change log; the clusters with their live health from the
// monitor; the placement rows it holds, below), asks package failover for each changed
// workload's decision, and commits what it returns: the placement rows
// first, in one transaction with one new epoch, then delivery of desired
// state to each member over NATS until acknowledged (many workloads per
// request, protocol.DesiredBatch; one per request to a member that does
// not take batches), and the workloads' placement status, conditions and
// events, fenced by the leader term. Those status writes, and the
// record of the members' acknowledgements, run on while the next pass
// decides and delivers (a burst of creates waits for delivery, not for
// bookkeeping); a workload whose status is still being written is
// decided once it is and the workloads cache has read the write back
// (unread: a decision against the status before it would undo it), and
// an acknowledged epoch not yet recorded is not sent again. A status is
// written only when its outcome changes: the explanation's words are
// none, and a status stores no cluster filtered out for its health
// (Suspect, Unknown, Unreachable, policyReasons): each missed heartbeat
// would rewrite every workload that could have gone to that cluster, and
// a health stored but not rewritten when it changes would be false.
//
// When clusters are lost, the workloads with replicas on them go first,
// failoverChunk at a time (failoverGroups): each chunk's rows are
// stored with an epoch of their own and its delivery runs
// (startDelivery) while the next chunks are decided and stored; every
// chunk's delivery ends (endDelivery, which records the
// acknowledgements) before the pass's whole delivery, and the status
// writes start once everything was delivered. A pass that finds a
// cluster newly lost first waits for the status writes under way (the
// status-only ones give way to the loss), at most newLossWait, so that
// their workloads are decided in it, and reads the change log a chunk
// at a time (Follow.Hurry) rather than a whole list; any pass reads on,
// a chunk at a time, until it has read its own status writes back. A
// failed-over workload is decided by the clock (its failback's rate and
// windows) only while a cluster it failed over from is Ready
// (mayFailBack); a cluster's change of health decides every workload
// anyway. A pass that finds a cluster lost while it decides (it looks
// every lossCheckEvery decisions) leaves the rest to the next pass,
// which it asks for at once, so that the failover does not wait for a
// pass deciding against the health it read. That pass is not cut short
// itself (p.cut): losses one after another would otherwise cut every
// pass at the same workloads, name order, and never decide the rest.
//
// The leader holds its placement rows in memory (held.go) as the
// authority for its passes, instead of reading every row on every pass
// (a million at the full scale): only the leader placer writes them, in
// fenced transactions (the rows and tombstones of a new epoch, a retired
// workload's removal) and in unfenced marks (a member's acknowledgement,
// MarkDeliveredAll; a digest's lack, MarkUndelivered). A write is applied
// to the rows held only once it committed, as its SQL does (an
// acknowledgement only where the row is still at the acknowledged epoch,
// so a row placed again meanwhile is still sent); until then an
// acknowledged epoch is remembered apart (acking) and not sent again. The
// rows are read whole at the start of each term of its own (another hub
// may have written them meanwhile), on the next pass after a write whose
// outcome is unknown (any failed commit or mark: it may have committed),
// and every minute as a safety net, which counts and logs the rows that
// differ (placement.held.drift: a bug, but for the case below) and
// decides their workloads again. A hub that stops leading holds none.
// A previous leader's marks are not fenced and may land after the new
// leader read the rows: a late acknowledgement makes the new leader send
// that epoch again (a member answers an epoch it already holds as
// acknowledged: the resend is harmless), and a late "undelivered" is found by the new
// leader's own digest check of that member within about 5 s, or taken
// from the table by the minute's read. Other readers (drills, datasync,
// the standby, PlanRebalance, which any hub answers) read the table.
//
// Every few seconds it compares each Ready member's digest and marks what
// the member lacks for redelivery, so a lost message converges, and
// acknowledges what the member holds at its epoch though no answer came.
// Desired state sent without an answer in time (a member too busy to
// answer within the request's 2 s) is not sent again on the next pass:
// that pass checks the member's digest first, and what is still lacking
// goes again then, or once the doubt ends (doubtFor, 5 s). A deleted
// workload is retired through tombstones, and its finalizer released once
// every member confirmed. An oci template is delivered with its image
// pinned to the digest its revision's tag resolved to (Pins, package
// imagepin); until then its delivery waits.
//
// The StatusFolder folds the members' status reports into
// Workload.status (per-cluster breakdown, totals, Available) in batches:
// a report that changed waits only until its batch folds it into the
// stored rows, and the folder keeps per workload and cluster a mark (the
// ready replicas and a fingerprint). A report from an Unreachable cluster
// is history and counts for nothing. The stored rows are checked against
// the marks when a cluster's whole status comes (a removal heard and not
// written: the last leader stopped first), and a deregistered cluster's
// rows go. It also folds each member's warm standby
// (which of its nodes hold a workload's image ahead of a failover) into
// Workload.status.images, with ImagePrepulled and PrepullFailed events.
//
// It owns when and how placement decisions are committed and delivered.
// It must not decide (package failover and package placement do), serve
// HTTP, or write cluster health (package members does).
package placer
