package runtime

import (
	"os/exec"
	goruntime "runtime"
	"sync"
)

// spawner starts processes from one OS thread that is never given back to
// the Go scheduler. A parent-death signal fires when the thread that
// forked the child exits; the Go runtime may retire other threads at any
// time, but never this one, so with DieWithAgent a replica dies exactly
// when its agent does.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	theSpawn  *spawner
)

func spawnerThread() *spawner {
	spawnOnce.Do(func() {
		theSpawn = &spawner{reqs: make(chan spawnReq)}
		go func() {
			goruntime.LockOSThread() // never unlocked, never returns: the thread lives as long as the process
			for req := range theSpawn.reqs {
				req.done <- req.cmd.Start()
			}
		}()
	})
	return theSpawn
}

// start runs cmd.Start on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}
