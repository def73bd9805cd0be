package runtime

import (
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
)

// allocatePortLocked picks rep's port: the template's first hostPort when
// set, else a free port of PortRange (starting from a place derived from
// the replica ID, so a replica tends to get the same port again). A port
// stays with its replica across restarts and is released when the replica
// is forgotten.
func (r *Runtime) allocatePortLocked(rep *replica) (int, error) {
	id := rep.spec.ID
	udp := false
	if ps := rep.spec.Template.Ports; len(ps) > 0 {
		udp = ps[0].Protocol == "UDP"
		if p := int(ps[0].HostPort); p > 0 {
			if owner, ok := r.ports[p]; ok && owner != id {
				return 0, fmt.Errorf("host port %d is taken by replica %s", p, owner)
			}
			if !portFree(p, udp) {
				return 0, fmt.Errorf("host port %d is in use on this node", p)
			}
			r.ports[p] = id
			return p, nil
		}
	}
	lo, hi := r.cfg.PortRange[0], r.cfg.PortRange[1]
	n := hi - lo + 1
	h := fnv.New32a()
	h.Write([]byte(id))
	start := int(h.Sum32() % uint32(n))
	for i := range n {
		p := lo + (start+i)%n
		if _, taken := r.ports[p]; taken {
			continue
		}
		if portFree(p, udp) {
			r.ports[p] = id
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port in %d-%d", lo, hi)
}

// portFree reports whether nothing listens on port (on any address).
func portFree(port int, udp bool) bool {
	addr := ":" + strconv.Itoa(port)
	if udp {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}
