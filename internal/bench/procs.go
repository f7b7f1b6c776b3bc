package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The rule runners as real rulenode processes (issue 10 asks for 1 → 2 → 4
// processes on one store): each process is a separate binary with its own
// connection, sharing the rule set's durable consumer, as deployed.

// LoopProcesses names the process rows.
const LoopProcesses = "rulenode processes"

// rulenodeProc is one started rulenode.
type rulenodeProc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// measureProcesses is measureRunners with count rulenode processes of
// cfg.Rulenode: from starting them until the consumer has acknowledged
// every event. CPU is this process's plus the rulenodes' (from /proc at
// the end of the timed part; 0 where there is no /proc).
func (e *Env) measureProcesses(ctx context.Context, orders *orderLoad, count int, cfg RulesConfig) (RuleRow, error) {
	row := RuleRow{Fsync: e.Mode, Loop: LoopProcesses, Runners: count, Events: orders.shipped}
	k := e.nextRun()
	name, loyalty := fmt.Sprintf("benchloyalty%d", k), fmt.Sprintf("loyalty%d", k)
	if err := e.Client.Define(ctx, loyaltyDef(loyalty)); err != nil {
		return row, err
	}
	file := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(file, []byte(loyaltyYAML(name, orders.bucket, loyalty)), 0o600); err != nil {
		return row, err
	}
	procs := make([]*rulenodeProc, 0, count)
	stopAll := func() error {
		var errs []error
		for _, p := range procs {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
			if p.err != nil {
				errs = append(errs, fmt.Errorf("rulenode: %w\n%s", p.err, p.stderr.String()))
			}
		}
		return errors.Join(errs...)
	}
	cpu0, t0 := processCPU(), time.Now()
	for range count {
		p := &rulenodeProc{exited: make(chan struct{})}
		p.cmd = exec.Command(cfg.Rulenode, "--rules", file, "--nats", e.Server.ClientURL(), "--concurrency", strconv.Itoa(cfg.InFlight), "--batch", strconv.Itoa(cfg.batching()))
		p.cmd.Env = daemonEnv()
		p.cmd.Stderr = &p.stderr
		if err := p.cmd.Start(); err != nil {
			return row, errors.Join(err, stopAll())
		}
		go func() { p.err = p.cmd.Wait(); close(p.exited) }()
		procs = append(procs, p)
	}
	err := awaitCondition(ctx, func(ctx context.Context) (bool, error) {
		for _, p := range procs {
			select {
			case <-p.exited:
				return false, fmt.Errorf("rulenode exited early: %v\n%s", p.err, p.stderr.String())
			default:
			}
		}
		return e.consumed(ctx, name, orders.shipped)
	})
	row.Elapsed, row.CPU = time.Since(t0), processCPU()-cpu0
	for _, p := range procs {
		row.CPU += pidCPU(p.cmd.Process.Pid)
	}
	if err == nil {
		err = e.checkPoints(ctx, loyalty, orders.points)
	}
	if err == nil {
		err = e.runnerLatency(ctx, orders, loyalty, &row, cfg.Turns)
	}
	return row, errors.Join(err, stopAll())
}

// daemonEnv is this process's environment without the variables rulenode
// reads (STORELOOP_*, OTEL_*): the processes are configured by their flags
// alone, as the in-process runners are.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STORELOOP_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// pidCPU is the CPU time (user + system) of a running child process, read
// from /proc/PID/stat (in clock ticks of 10 ms), or 0 if it cannot be read.
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
