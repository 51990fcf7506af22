//go:build !linux

package testproc

import "syscall"

// sysProcAttr has nothing to add where the kernel offers no parent-death signal; a
// test binary killed mid-run may then leave its server behind.
func sysProcAttr() *syscall.SysProcAttr { return nil }
