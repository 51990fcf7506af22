package testpebble

import "syscall"

// sysProcAttr asks the kernel to kill pebble when the test binary dies, so a test
// that times out (go test panics, no Cleanup runs) leaves no server behind. Pdeathsig
// follows the thread that forked the child; Go retires a thread only when a goroutine
// exits while locked to it, which the caller of Start never is.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
