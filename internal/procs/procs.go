// Package procs builds storeloop's real binaries and runs them as child
// processes for tests: each binary is built once per test binary, a process
// is started with its arguments, waited for (a line on stdout or stderr, or
// an HTTP endpoint answering 200) with a deadline, and stopped with SIGTERM
// or SIGKILL. Its stderr goes into the test log when the test fails, and
// every process still running when the test ends is killed.
package procs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Module is the import path prefix of storeloop's commands.
const Module = "github.com/storeloop/storeloop/cmd/"

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]error{} // package → build error (nil: built)
)

// Build compiles the main package pkg (an import path, or a short name such
// as "rulenode" for Module+"rulenode") once per test binary and returns the
// path of the executable. The executables live in one temporary directory,
// removed by [Cleanup].
func Build(t testing.TB, pkg string) string {
	t.Helper()
	if !strings.Contains(pkg, "/") {
		pkg = Module + pkg
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "storeloop-procs-")
		if err != nil {
			t.Fatalf("procs: %v", err)
		}
		buildDir = dir
	}
	bin := filepath.Join(buildDir, path.Base(pkg))
	err, ok := built[pkg]
	if !ok {
		out, cerr := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if cerr != nil {
			err = fmt.Errorf("procs: go build %s: %v\n%s", pkg, cerr, out)
		}
		built[pkg] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Cleanup removes the built executables; call it from TestMain after m.Run.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir = ""
		clear(built)
	}
}

// Spec says how to run a process. The same Spec started again is a restart.
type Spec struct {
	Name string   // for the test log
	Bin  string   // from Build
	Args []string // command-line arguments
	Env  []string // extra environment variables, "K=V"
}

// Proc is one running (or finished) process.
type Proc struct {
	Spec Spec
	cmd  *exec.Cmd

	mu     sync.Mutex
	lines  []line        // stdout and stderr, in arrival order per stream
	notify chan struct{} // closed and replaced when a line arrives or the process exits
	exited chan struct{} // closed once Wait returned
	state  *os.ProcessState
}

type line struct {
	stderr bool
	text   string
}

// Start runs spec. The process is killed when the test ends, and its output
// is logged if the test failed.
func Start(t testing.TB, spec Spec) *Proc {
	t.Helper()
	p := &Proc{Spec: spec, notify: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(spec.Bin, spec.Args...)
	p.cmd.Env = append(cleanEnv(), spec.Env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("procs: %v", err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatalf("procs: %v", err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("procs: start %s: %v", spec.Name, err)
	}
	var readers sync.WaitGroup
	readers.Go(func() { p.read(stdout, false) })
	readers.Go(func() { p.read(stderr, true) })
	go func() {
		// Wait closes the pipes, so the readers must be done first.
		readers.Wait()
		_ = p.cmd.Wait()
		p.mu.Lock()
		p.state = p.cmd.ProcessState
		p.wake()
		p.mu.Unlock()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("output of %s (pid %d):\n%s", spec.Name, p.cmd.Process.Pid, p.Output())
		}
	})
	return p
}

// cleanEnv is the test's environment without the variables the daemons
// read (STORELOOP_*, OTEL_*), so that only a Spec's flags and Env configure
// them, whatever the shell running the tests exported.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STORELOOP_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *Proc) read(r io.Reader, stderr bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, line{stderr: stderr, text: sc.Text()})
		p.wake()
		p.mu.Unlock()
	}
}

// wake tells waiters something changed; p.mu is held.
func (p *Proc) wake() {
	close(p.notify)
	p.notify = make(chan struct{})
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output is everything the process wrote so far, stderr lines marked "! ".
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		if l.stderr {
			b.WriteString("! ")
		}
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// Lines returns the lines of stdout (stderr false) or stderr (true)
// containing substr.
func (p *Proc) Lines(stderr bool, substr string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines {
		if l.stderr == stderr && strings.Contains(l.text, substr) {
			out = append(out, l.text)
		}
	}
	return out
}

// WaitLine waits until a line of stdout (stderr false) or stderr (true)
// contains substr and returns the first such line. It fails the test if
// the process exits or the timeout passes first.
func (p *Proc) WaitLine(t testing.TB, stderr bool, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if l.stderr == stderr && strings.Contains(l.text, substr) {
				p.mu.Unlock()
				return l.text
			}
		}
		notify, done := p.notify, p.state != nil
		p.mu.Unlock()
		if done {
			t.Fatalf("procs: %s exited (%s) before writing %q:\n%s", p.Spec.Name, p.state, substr, p.Output())
		}
		select {
		case <-notify:
		case <-deadline.C:
			t.Fatalf("procs: %s did not write %q in %s:\n%s", p.Spec.Name, substr, timeout, p.Output())
		}
	}
}

// WaitHTTP polls url every few milliseconds until it answers 200 and
// returns the body. It fails the test if the process exits or the timeout
// passes first.
func (p *Proc) WaitHTTP(t testing.TB, url string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		body, err := Get(ctx, url)
		if err == nil {
			return body
		}
		last = err.Error()
		select {
		case <-p.exited:
			t.Fatalf("procs: %s exited (%s) before %s answered: %s\n%s", p.Spec.Name, p.state, url, last, p.Output())
		case <-ctx.Done():
			t.Fatalf("procs: %s: %s did not answer 200 in %s: %s\n%s", p.Spec.Name, url, timeout, last, p.Output())
		case <-tick.C:
		}
	}
}

// Get fetches url and returns its body, or an error if it does not answer 200.
func Get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func (p *Proc) signal(sig os.Signal) {
	// An error means the process is already gone: nothing to do.
	_ = p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	p.wait(t, 10*time.Second)
}

// Stop sends SIGTERM, waits up to timeout for the process to exit, and
// fails the test unless it exited with status 0.
func (p *Proc) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	p.signal(syscall.SIGTERM)
	p.wait(t, timeout)
	if !p.state.Success() {
		t.Fatalf("procs: %s stopped with %s:\n%s", p.Spec.Name, p.state, p.Output())
	}
}

func (p *Proc) wait(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("procs: %s did not exit in %s:\n%s", p.Spec.Name, timeout, p.Output())
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// WaitExit waits up to timeout for the process to end by itself and
// returns how it ended.
func (p *Proc) WaitExit(t testing.TB, timeout time.Duration) *os.ProcessState {
	t.Helper()
	p.wait(t, timeout)
	return p.state
}

// RunMain runs main with os.Args set to args in a child process (this test
// binary, re-entered through the calling test) and returns its output and
// error (an *exec.ExitError for a non-zero exit): how a test sees the exit
// status a command's main chooses.
func RunMain(t *testing.T, main func(), args ...string) (string, error) {
	t.Helper()
	const reentered = "STORELOOP_TEST_RUN_MAIN"
	if os.Getenv(reentered) != "" {
		os.Args = args
		main()
		os.Exit(0) // main returned: the exit status is main's to choose
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$")
	cmd.Env = append(os.Environ(), reentered+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
