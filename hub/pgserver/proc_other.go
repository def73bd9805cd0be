//go:build !linux

package pgserver

import "syscall"

// setParentDeathSignal does nothing where the kernel offers no parent-death
// signal: there a killed parent may leave the server running until the
// next Start finds it in postmaster.pid.
func setParentDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) {}
