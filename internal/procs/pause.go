package procs

import "syscall"

// Pause stops the process (SIGSTOP) without ending it: a paused, not
// dead, daemon. Resume continues it.
func (p *Proc) Pause() { p.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Proc) Resume() { p.signal(syscall.SIGCONT) }
