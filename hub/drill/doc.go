// Package drill runs failover drills: plan, run, measure.
//
// A Drill is a resource whose creation starts a fault: an evacuation (a
// NoExecute taint), an outage or a partition (a command each target member
// must acknowledge). plan.go decides: a pure plan of where the targets'
// replicas go, workload after workload, each using the capacity the ones
// before took, with its warnings (workloads already unavailable,
// objectives the fault makes impossible, policies that cannot hold);
// Controller.Plan serves it for the API's dry run and its create. The
// Controller runs on the leader hub (Start, Stop, RunOnce): it puts the
// fault in place (start.go), samples recovery every 200 ms from the
// members' fresh status reports and the placements (measure.go measures,
// per workload too, naming what blocks recovery), lifts the fault at the
// end or on abort, measures failback and writes the report (finish.go):
// a phase (Completed, Aborted, Error) and, for a Completed drill, a
// verdict (Passed, or Failed with the objectives missed). A drill found
// Running without the hub that ran it is restored and ended in Error,
// interrupted.
//
// It owns a drill's lifecycle and its report. It must not place replicas
// (the placer moves them, as it would in a real fault) or serve HTTP
// (package httpapi serves the drill routes).
package drill
