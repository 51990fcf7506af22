package testproc

import "syscall"

// sysProcAttr asks the kernel to kill the server when the test binary dies, so a test
// that times out (go test panics, no Cleanup runs) leaves no server behind. Pdeathsig
// follows the thread that forked the child; Go retires a thread only when a goroutine
// exits while locked to it, which the callers of Start never are.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
