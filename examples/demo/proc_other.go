//go:build !linux

package main

import "syscall"

// sysProcAttr has nothing to add where the kernel offers no parent-death signal.
func sysProcAttr() *syscall.SysProcAttr { return nil }
