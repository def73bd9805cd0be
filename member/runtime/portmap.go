package runtime

import (
	"fmt"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/portfwd"
)

// mapped reports whether rep is a container with a network of its own
// whose ports the agent forwards.
func (rep *replica) mapped() bool { return rep.isOCI() && rep.spec.Template.PortsMapped() }

// hostPortOf is the host port of rep's port i: the replica's port for
// the first, the template's fixed one for the others.
func (rep *replica) hostPortOf(i int) int {
	if i == 0 {
		return rep.port
	}
	return int(rep.spec.Template.Ports[i].HostPort)
}

// forwardLocked opens rep's port forwards (host port → container port
// in the container's network namespace) unless they are open. They stay
// open across the container's restarts and hold the host ports.
func (r *Runtime) forwardLocked(rep *replica) error {
	if len(rep.fwds) > 0 {
		return nil
	}
	var fwds []*portfwd.Forward
	var extra []int
	undo := func() {
		r.closeForwards(fwds)
		for _, p := range extra {
			delete(r.ports, p)
		}
	}
	target := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		if rep.run == nil || rep.run.exited || rep.bundle == nil {
			return 0
		}
		return containerPid(rep.bundle)
	}
	for i, p := range rep.spec.Template.Ports {
		hp := rep.hostPortOf(i)
		if i > 0 {
			if owner, ok := r.ports[hp]; ok && owner != rep.spec.ID {
				undo()
				return fmt.Errorf("host port %d is taken by replica %s", hp, owner)
			}
			r.ports[hp] = rep.spec.ID
			extra = append(extra, hp)
		}
		f, err := portfwd.Listen(hp, int(p.ContainerPort), target, r.log)
		if err != nil {
			undo()
			return err
		}
		fwds = append(fwds, f)
	}
	rep.fwds, rep.extraPorts = fwds, extra
	return nil
}

// unforwardLocked closes rep's forwards (in the background: a forward's
// connections may be waiting for r.mu) and releases its extra host ports.
func (r *Runtime) unforwardLocked(rep *replica) {
	r.closeForwards(rep.fwds)
	for _, p := range rep.extraPorts {
		if r.ports[p] == rep.spec.ID {
			delete(r.ports, p)
		}
	}
	rep.fwds, rep.extraPorts = nil, nil
}

// closeForwards closes fwds in the background (their connections may be
// waiting for r.mu), counted in r.wg so that Stop waits for them.
func (r *Runtime) closeForwards(fwds []*portfwd.Forward) {
	for _, f := range fwds {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			f.Close()
		}()
	}
}

// probesThroughHostPorts returns t with the http and tcp probes of a
// container with mapped ports aimed at the host ports: a probe port that
// names a container port becomes the port forwarded to it (0, the first
// port, is the replica's port already).
func probesThroughHostPorts(t api.ReplicaTemplate) api.ReplicaTemplate {
	if !t.PortsMapped() {
		return t
	}
	hostPort := func(p int32) int32 {
		if p == 0 {
			return 0
		}
		switch i := t.MappedPort(p); {
		case i == 0:
			return 0
		case i > 0:
			return t.Ports[i].HostPort
		}
		return p
	}
	aim := func(p *api.Probe) *api.Probe {
		if p == nil || (p.HTTP == nil && p.TCP == nil) {
			return p
		}
		c := *p
		if p.HTTP != nil {
			h := *p.HTTP
			h.Port = hostPort(h.Port)
			c.HTTP = &h
		}
		if p.TCP != nil {
			tc := *p.TCP
			tc.Port = hostPort(tc.Port)
			c.TCP = &tc
		}
		return &c
	}
	t.Startup, t.Liveness, t.Readiness = aim(t.Startup), aim(t.Liveness), aim(t.Readiness)
	return t
}
