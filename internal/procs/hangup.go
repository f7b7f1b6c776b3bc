package procs

import "syscall"

// Hangup sends SIGHUP: a storenode with --auth reloads its auth directory.
func (p *Proc) Hangup() { p.signal(syscall.SIGHUP) }
