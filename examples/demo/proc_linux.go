package main

import "syscall"

// sysProcAttr asks the kernel to stop the gateway and the sandbox when the demo dies
// without cleaning up (killed, or a test binary timing out), so no process outlives
// it. Pdeathsig follows the thread that forked the child; Go retires a thread only
// when a goroutine exits while locked to it, which the demo's never are.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
