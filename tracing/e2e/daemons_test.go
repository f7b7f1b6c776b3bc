package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, from this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildDaemons builds cmd/storenode and cmd/rulenode into a temporary
// directory and returns it.
func buildDaemons(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/storenode", "./cmd/rulenode")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// daemonEnv is the test's environment without the variables the daemons
// read, so that only the flags configure them.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") && !strings.HasPrefix(kv, "STORELOOP_") {
			env = append(env, kv)
		}
	}
	return env
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is a started process, stopped with SIGTERM.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	log    *lockedBuffer // stderr
	exited chan struct{}
	err    error // of Wait, once exited is closed
	once   sync.Once
}

// startDaemon starts bin with args; stdout lines go to lines (if not nil).
// When the test ends the process is stopped if it still runs, and its log
// is shown if the test failed.
func startDaemon(t *testing.T, bin string, lines chan<- string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: filepath.Base(bin), cmd: exec.Command(bin, args...), log: &lockedBuffer{}, exited: make(chan struct{})}
	d.cmd.Env = daemonEnv()
	d.cmd.Stderr = d.log
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", d.name, err)
	}
	var reading sync.WaitGroup
	reading.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if lines != nil {
				select {
				case lines <- sc.Text():
				default: // nobody waits for it any more
				}
			}
		}
	})
	go func() {
		reading.Wait() // Wait closes the pipe: read it to the end first
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("%s: %v", d.name, err)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", d.name, d.log.String())
		}
	})
	return d
}

// stop sends SIGTERM and waits for the process; an exit status other than
// 0 is an error. Later calls return nil.
func (d *daemon) stop() error {
	var err error
	d.once.Do(func() {
		select {
		case <-d.exited:
			err = fmt.Errorf("exited early: %v", d.err)
			return
		default:
		}
		if serr := d.cmd.Process.Signal(syscall.SIGTERM); serr != nil {
			err = serr
			return
		}
		select {
		case <-d.exited:
			if d.err != nil {
				err = fmt.Errorf("after SIGTERM: %w, want exit status 0", d.err)
			}
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
			err = errors.New("did not exit within 30s of SIGTERM")
		}
	})
	return err
}

// waitLine returns the first line from lines with the prefix, failing the
// test when d exits or the timeout passes first.
func (d *daemon) waitLine(t *testing.T, lines <-chan string, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-d.exited:
			t.Fatalf("%s exited before printing %q: %v\n%s", d.name, prefix, d.err, d.log.String())
		case <-deadline:
			t.Fatalf("%s did not print %q within %v\n%s", d.name, prefix, timeout, d.log.String())
		}
	}
}

// waitReady polls url until it answers 200, failing the test when d exits
// or the timeout passes first.
func (d *daemon) waitReady(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	hc := &http.Client{Timeout: time.Second}
	for {
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-d.exited:
			t.Fatalf("%s exited before %s was ready: %v\n%s", d.name, url, d.err, d.log.String())
		case <-deadline:
			t.Fatalf("%s: %s not ready within %v\n%s", d.name, url, timeout, d.log.String())
		case <-tick.C:
		}
	}
}

// freeAddr returns a loopback address with a port nobody listened on a
// moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
